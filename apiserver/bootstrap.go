package apiserver

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/raftstore"
)

// bootstrapObjects are what kube-apiserver creates at start: the system namespaces and
// the default RBAC roles and bindings.
func bootstrapObjects() []runtime.Object {
	ns := func(n string) runtime.Object { return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}} }
	crb := func(name, role, group string) runtime.Object {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: bootstrapLabels()},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: group}}}
	}
	cr := func(name string, rules ...rbacv1.PolicyRule) runtime.Object {
		return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: bootstrapLabels()}, Rules: rules}
	}
	read := []string{"get", "list", "watch"}
	return []runtime.Object{
		ns("default"), ns("kube-system"), ns("kube-public"), ns("kube-node-lease"),
		cr("cluster-admin",
			rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}},
			rbacv1.PolicyRule{NonResourceURLs: []string{"*"}, Verbs: []string{"*"}}),
		cr("system:discovery", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{
			"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/openapi", "/openapi/*", "/version", "/version/"}}),
		cr("system:basic-user", rbacv1.PolicyRule{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"},
			Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}}),
		cr("system:node",
			rbacv1.PolicyRule{Verbs: read, APIGroups: []string{""}, Resources: []string{"nodes", "pods", "services", "endpoints", "configmaps", "secrets", "namespaces"}},
			rbacv1.PolicyRule{Verbs: read, APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}},
			rbacv1.PolicyRule{Verbs: []string{"create", "update", "patch", "delete"}, APIGroups: []string{""}, Resources: []string{"nodes", "nodes/status", "pods/status"}},
			rbacv1.PolicyRule{Verbs: []string{"create", "update", "patch"}, APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}},
			rbacv1.PolicyRule{Verbs: append(read, "create", "update", "patch", "delete"), APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}}),
		crb("cluster-admin", "cluster-admin", "system:masters"),
		crb("system:discovery", "system:discovery", "system:authenticated"),
		crb("system:basic-user", "system:basic-user", "system:authenticated"),
	}
}

func bootstrapLabels() map[string]string {
	return map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}
}

// bootstrap creates the bootstrap objects that are missing, retrying until it succeeds
// (a new cluster may still be electing a leader) or ctx ends. Every control node runs it;
// creates are idempotent (an existing object is left alone).
func (s *Server) bootstrap(ctx context.Context) {
	objs := bootstrapObjects()
	for _, obj := range objs {
		gvk, _ := s.codecs.gvkOf(obj)
		rs := s.reg.byGVK[gvk]
		q := &request{rs: rs, ri: &requestInfo{Resource: rs.GVR.Resource}, user: &UserInfo{Name: "system:apiserver", Groups: []string{"system:masters"}}}
		for {
			_, err := s.create(ctx, q, obj.DeepCopyObject(), writeOptions{fieldManager: "skiff-bootstrap"})
			if err == nil || isAlreadyExists(err) {
				break
			}
			s.cfg.Logger.Debug("bootstrap retry", "kind", gvk.Kind, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

func isAlreadyExists(err error) bool {
	if errors.Is(err, raftstore.ErrKeyExists) {
		return true
	}
	st := toStatus(err, groupResourceNone, "")
	return st.Reason == metav1.StatusReasonAlreadyExists
}
