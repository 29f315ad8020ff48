package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/raftstore"
)

// authorizer decides as Kubernetes' "Node,RBAC" chain does: members of system:masters may do
// anything; node identities get the Node authorizer's rules; everyone else is judged by
// the RBAC roles and bindings in the store (read from this node's replica).
type authorizer struct {
	s     *Server
	cache *rbacCache
}

func newAuthorizer(s *Server) *authorizer { return &authorizer{s: s, cache: newRBACCache(s)} }

func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ri := userFrom(r.Context()), infoFrom(r.Context())
		ok, reason, err := s.authz.allowed(r.Context(), u, ri)
		if err != nil {
			writeError(w, err, groupResourceNone, "")
			return
		}
		if !ok {
			writeStatus(w, toStatus(forbidden(u, ri, reason), groupResourceNone, ""))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func forbidden(u *UserInfo, ri *requestInfo, reason string) error {
	gr := schema.GroupResource{Group: ri.Group, Resource: ri.Resource}
	if !ri.IsResource {
		return apierrors.NewForbidden(gr, "", fmt.Errorf("User %q cannot %s path %q", u.Name, ri.Verb, ri.Path))
	}
	res := ri.Resource
	if ri.Subresource != "" {
		res += "/" + ri.Subresource
	}
	scope := "at the cluster scope"
	if ri.Namespace != "" {
		scope = fmt.Sprintf("in the namespace %q", ri.Namespace)
	}
	msg := fmt.Sprintf("User %q cannot %s resource %q in API group %q %s", u.Name, ri.Verb, res, ri.Group, scope)
	if reason != "" {
		msg += ": " + reason
	}
	return apierrors.NewForbidden(gr, ri.Name, fmt.Errorf("%s", msg))
}

func (a *authorizer) allowed(ctx context.Context, u *UserInfo, ri *requestInfo) (bool, string, error) {
	if contains(u.Groups, "system:masters") {
		return true, "", nil
	}
	if node, ok := nodeName(u); ok {
		allowed, reason := a.nodeAllowed(ctx, node, ri)
		if allowed {
			return true, "", nil
		}
		if ok, _, err := a.rbacAllowed(ctx, u, ri); ok || err != nil {
			return ok, "", err
		}
		return false, reason, nil
	}
	return a.rbacAllowed(ctx, u, ri)
}

func (a *authorizer) rbacAllowed(ctx context.Context, u *UserInfo, ri *requestInfo) (bool, string, error) {
	crbs, err := a.listLocal(ctx, "clusterrolebindings", "")
	if err != nil {
		return false, "", err
	}
	for _, o := range crbs {
		b := o.(*rbacv1.ClusterRoleBinding)
		if !subjectsMatch(b.Subjects, u, "") {
			continue
		}
		if ok, err := a.roleAllows(ctx, b.RoleRef, "", ri); ok || err != nil {
			return ok, "", err
		}
	}
	if ri.Namespace != "" && ri.IsResource {
		rbs, err := a.listLocal(ctx, "rolebindings", ri.Namespace)
		if err != nil {
			return false, "", err
		}
		for _, o := range rbs {
			b := o.(*rbacv1.RoleBinding)
			if !subjectsMatch(b.Subjects, u, ri.Namespace) {
				continue
			}
			if ok, err := a.roleAllows(ctx, b.RoleRef, ri.Namespace, ri); ok || err != nil {
				return ok, "", err
			}
		}
	}
	return false, "", nil
}

// listLocal reads objects of a resource from the RBAC cache, or this node's replica
// before the cache has synced.
func (a *authorizer) listLocal(ctx context.Context, resource, ns string) ([]any, error) {
	if objs, ok := a.cache.list(resource, ns); ok {
		return objs, nil
	}
	rs := a.s.reg.lookup("rbac.authorization.k8s.io", "v1", resource)
	res, err := a.s.cfg.Store.List(ctx, a.s.objs.prefix(rs, ns), raftstore.ListOptions{ReadOptions: raftstore.ReadOptions{Stale: true}})
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(res.KVs))
	for _, kv := range res.KVs {
		obj, err := a.s.objs.decode(kv)
		if err != nil {
			continue
		}
		out = append(out, obj)
	}
	return out, nil
}

func (a *authorizer) roleAllows(ctx context.Context, ref rbacv1.RoleRef, ns string, ri *requestInfo) (bool, error) {
	var rules []rbacv1.PolicyRule
	switch ref.Kind {
	case "ClusterRole":
		obj, err := a.getLocal(ctx, "clusterroles", "", ref.Name)
		if obj == nil || err != nil {
			return false, err
		}
		rules = obj.(*rbacv1.ClusterRole).Rules
	case "Role":
		obj, err := a.getLocal(ctx, "roles", ns, ref.Name)
		if obj == nil || err != nil {
			return false, err
		}
		rules = obj.(*rbacv1.Role).Rules
	}
	for i := range rules {
		if ruleAllows(&rules[i], ri) {
			return true, nil
		}
	}
	return false, nil
}

// getLocal reads one RBAC object from the cache or this node's replica; nil if absent.
func (a *authorizer) getLocal(ctx context.Context, resource, ns, name string) (runtime.Object, error) {
	if obj, ok := a.cache.get(resource, ns, name); ok {
		return obj, nil
	}
	rs := a.s.reg.lookup("rbac.authorization.k8s.io", "v1", resource)
	obj, _, err := a.s.objs.get(ctx, rs, ns, name, true)
	if err != nil {
		return nil, ignoreNotFound(err)
	}
	return obj, nil
}

func subjectsMatch(subjects []rbacv1.Subject, u *UserInfo, bindingNS string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if s.Name == u.Name {
				return true
			}
		case rbacv1.GroupKind:
			if contains(u.Groups, s.Name) {
				return true
			}
		case rbacv1.ServiceAccountKind:
			ns := s.Namespace
			if ns == "" {
				ns = bindingNS
			}
			if u.Name == "system:serviceaccount:"+ns+":"+s.Name {
				return true
			}
		}
	}
	return false
}

// ruleAllows is RBAC's rule matching: verbs, API groups, resources (with "*" and
// "resource/subresource"), resource names, and non-resource URLs with a trailing "*".
func ruleAllows(rule *rbacv1.PolicyRule, ri *requestInfo) bool {
	if !matches(rule.Verbs, ri.Verb) {
		return false
	}
	if !ri.IsResource {
		for _, u := range rule.NonResourceURLs {
			if u == "*" || u == ri.Path || (strings.HasSuffix(u, "*") && strings.HasPrefix(ri.Path, strings.TrimSuffix(u, "*"))) {
				return true
			}
		}
		return false
	}
	if !matches(rule.APIGroups, ri.Group) {
		return false
	}
	res := ri.Resource
	if ri.Subresource != "" {
		res += "/" + ri.Subresource
	}
	ok := false
	for _, r := range rule.Resources {
		if r == "*" || r == res || (ri.Subresource != "" && r == "*/"+ri.Subresource) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	return len(rule.ResourceNames) == 0 || (ri.Name != "" && contains(rule.ResourceNames, ri.Name))
}

func matches(list []string, s string) bool {
	for _, x := range list {
		if x == "*" || x == s {
			return true
		}
	}
	return false
}

func ignoreNotFound(err error) error {
	if errors.Is(err, raftstore.ErrNotFound) {
		return nil
	}
	return err
}
