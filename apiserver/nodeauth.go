package apiserver

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// nodeName returns <name> for the identity system:node:<name> in group system:nodes.
func nodeName(u *UserInfo) (string, bool) {
	if !contains(u.Groups, "system:nodes") || !strings.HasPrefix(u.Name, "system:node:") {
		return "", false
	}
	n := strings.TrimPrefix(u.Name, "system:node:")
	return n, n != ""
}

var nodeReadable = map[string]bool{
	"nodes": true, "pods": true, "services": true, "endpoints": true, "configmaps": true,
	"secrets": true, "namespaces": true, "leases": true, "events": true, "serviceaccounts": true,
	"endpointslices": true,
}

// nodeAllowed is the Node authorizer plus NodeRestriction admission, simplified: a node
// reads what it needs to run pods (skiff differs on purpose: it does not narrow secrets and
// configmaps to those its pods reference), and writes only its own Node and Lease, the
// status of (and deletion of) pods bound to it, and events.
func (a *authorizer) nodeAllowed(ctx context.Context, node string, ri *requestInfo) (bool, string) {
	if !ri.IsResource {
		return true, "" // discovery, version, openapi
	}
	read := ri.Verb == "get" || ri.Verb == "list" || ri.Verb == "watch"
	switch {
	case read && nodeReadable[ri.Resource] && (ri.Subresource == "" || ri.Subresource == "status"):
		return true, ""
	case ri.Resource == "nodes":
		if ri.Name == node || (ri.Verb == "create" && ri.Name == "") {
			return true, "" // the create body's name is checked in admission (nodeCanCreate)
		}
		return false, "node " + node + " can only modify its own Node object"
	case ri.Resource == "leases" && ri.Group == "coordination.k8s.io":
		if ri.Namespace == "kube-node-lease" && (ri.Name == node || (ri.Verb == "create" && ri.Name == "")) {
			return true, ""
		}
		return false, "node " + node + " can only modify its own Lease"
	case ri.Resource == "events" && (ri.Verb == "create" || ri.Verb == "patch" || ri.Verb == "update"):
		return true, ""
	case ri.Resource == "serviceaccounts" && ri.Subresource == "token" && ri.Verb == "create":
		return true, "" // the handler checks that the token is bound to a pod of this node
	case ri.Resource == "pods" && (ri.Subresource == "status" || (ri.Subresource == "" && ri.Verb == "delete")):
		if ri.Verb == "deletecollection" {
			return false, "nodes may not delete collections of pods"
		}
		rs := a.s.reg.lookup("", "v1", "pods")
		obj, rev, err := a.s.objs.get(ctx, rs, ri.Namespace, ri.Name, true)
		if err != nil {
			return false, "pod not found"
		}
		if obj.(*corev1.Pod).Spec.NodeName == node {
			ri.read = &replicaRead{rs: rs, obj: obj, rev: rev}
			return true, ""
		}
		return false, "node " + node + " can only modify pods bound to it"
	}
	return false, "node " + node + " may not " + ri.Verb + " " + ri.Resource
}
