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
// namespace. The read is linearizable so that a namespace just created through another
// node is seen.
func (s *Server) namespaceAccepts(ctx context.Context, ns string) error {
	rs := s.reg.lookup("", "v1", "namespaces")
	obj, _, err := s.objs.get(ctx, rs, "", ns, false)
	if errors.Is(err, raftstore.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns)
	}
	if err != nil {
		return err
	}
	if n := obj.(*corev1.Namespace); n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, ns,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
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
