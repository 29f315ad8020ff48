package apiserver

import (
	"fmt"
	"net/http"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
)

// serveAccessReview answers SelfSubjectAccessReview (kubectl auth can-i) and
// SubjectAccessReview (can-i --as, and webhooks) with the same authorizer that guards
// every request, so the answer is exactly what the request would meet. Nothing is stored.
func (s *Server) serveAccessReview(w http.ResponseWriter, r *http.Request, q *request) {
	if q.ri.Verb != "create" || q.ri.Name != "" || q.ri.Subresource != "" {
		writeError(w, errMethodNotAllowed(r), q.gr(), q.ri.Name)
		return
	}
	data, err := s.readBody(r)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	dec, err := s.codecs.bodyDecoder(r, false)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	gvk := q.rs.gvk()
	var into runtime.Object = &authorizationv1.SubjectAccessReview{}
	if q.rs.Kind == "SelfSubjectAccessReview" {
		into = &authorizationv1.SelfSubjectAccessReview{}
	}
	obj, _, err := dec.Decode(data, &gvk, into)
	if err != nil {
		writeError(w, apierrors.NewBadRequest(fmt.Sprint("decoding ", gvk.Kind, ": ", err)), q.gr(), "")
		return
	}
	var (
		u      *UserInfo
		ra     *authorizationv1.ResourceAttributes
		nra    *authorizationv1.NonResourceAttributes
		status *authorizationv1.SubjectAccessReviewStatus
	)
	switch o := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		u, ra, nra, status = q.user, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes, &o.Status
	case *authorizationv1.SubjectAccessReview:
		if o.Spec.User == "" && len(o.Spec.Groups) == 0 {
			writeError(w, apierrors.NewBadRequest("at least one of user or group must be specified"), q.gr(), "")
			return
		}
		u = &UserInfo{Name: o.Spec.User, UID: o.Spec.UID, Groups: append([]string(nil), o.Spec.Groups...)}
		ra, nra, status = o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes, &o.Status
	default:
		writeError(w, apierrors.NewBadRequest("unexpected kind"), q.gr(), "")
		return
	}
	if (ra == nil) == (nra == nil) {
		writeError(w, apierrors.NewBadRequest("exactly one of resourceAttributes or nonResourceAttributes must be specified"), q.gr(), "")
		return
	}
	ri := reviewRequestInfo(ra, nra)
	allowed, reason, err := s.authz.allowed(r.Context(), u, ri)
	if err != nil {
		status.EvaluationError = err.Error()
	}
	status.Allowed, status.Reason = allowed, reason
	if allowed && status.Reason == "" {
		status.Reason = "allowed by skiff's Node,RBAC authorizer"
	}
	s.writeObject(w, r, q, http.StatusCreated, obj)
}

// reviewRequestInfo is the request a review asks about, in the authorizer's terms.
func reviewRequestInfo(ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) *requestInfo {
	if nra != nil {
		return &requestInfo{Verb: nra.Verb, Path: nra.Path}
	}
	return &requestInfo{IsResource: true, Verb: ra.Verb, Group: ra.Group, Version: ra.Version,
		Namespace: ra.Namespace, Resource: ra.Resource, Subresource: ra.Subresource, Name: ra.Name}
}
