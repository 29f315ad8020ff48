package apiserver

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/raftstore"
)

// namespaceAccepts is NamespaceLifecycle admission: no creates in a missing or terminating
// namespace. An active namespace in this server's replica is enough (kube-apiserver asks
// its informer cache); a missing or terminating one is looked up again linearizably, so
// that a namespace just created (or re-created) through another server is seen.
func (s *Server) namespaceAccepts(ctx context.Context, ns string) error {
	rs := s.reg.lookup("", "v1", "namespaces")
	if obj, _, err := s.objs.get(ctx, rs, "", ns, true); err == nil && !terminating(obj.(*corev1.Namespace)) {
		return nil
	}
	obj, _, err := s.objs.get(ctx, rs, "", ns, false)
	if errors.Is(err, raftstore.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns)
	}
	if err != nil {
		return err
	}
	if terminating(obj.(*corev1.Namespace)) {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, ns,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

func terminating(n *corev1.Namespace) bool {
	return n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating
}

// admitNode is NodeRestriction for creates: a node may create only its own Node and Lease
// (the authorizer cannot see the name of an object being created).
func (s *Server) admitNode(ctx context.Context, q *request, obj runtime.Object) error {
	node, ok := nodeName(q.user)
	if !ok || contains(q.user.Groups, "system:masters") {
		return nil
	}
	m, _ := meta.Accessor(obj)
	switch q.rs.GVR.Resource {
	case "nodes", "leases":
		if m.GetName() != node {
			return apierrors.NewForbidden(q.gr(), m.GetName(), fmt.Errorf("node %q may only create its own %s", node, q.rs.Kind))
		}
	}
	return nil
}
