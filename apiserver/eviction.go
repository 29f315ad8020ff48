package apiserver

import (
	"fmt"
	"net/http"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// handleEviction serves pods/eviction (kubectl drain, the node lifecycle controller): a
// graceful delete with the Eviction's DeleteOptions. Skiff differs on purpose: it serves no
// PodDisruptionBudgets yet, so no eviction is refused with 429.
func (s *Server) handleEviction(w http.ResponseWriter, r *http.Request, q *request) {
	data, err := s.readBody(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	dec, err := s.codecs.bodyDecoder(r, false)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	gvk := policyv1.SchemeGroupVersion.WithKind("Eviction")
	obj, _, err := dec.Decode(data, &gvk, nil)
	if err != nil {
		writeError(w, apierrors.NewBadRequest(fmt.Sprint("decoding Eviction: ", err)), q.gr(), q.ri.Name)
		return
	}
	var name string
	var opts *metav1.DeleteOptions
	switch e := obj.(type) {
	case *policyv1.Eviction:
		name, opts = e.Name, e.DeleteOptions
	default:
		// policy/v1beta1 and any other version convert through the generic accessor.
		m, ok := obj.(metav1.Object)
		if !ok {
			writeError(w, apierrors.NewBadRequest(fmt.Sprintf("expected an Eviction, got %T", obj)), q.gr(), q.ri.Name)
			return
		}
		name = m.GetName()
		if v := fieldOf(obj, "DeleteOptions"); v.IsValid() {
			opts, _ = v.Interface().(*metav1.DeleteOptions)
		}
	}
	if name != q.ri.Name {
		writeError(w, apierrors.NewBadRequest("name in URL does not match name in Eviction object"), q.gr(), q.ri.Name)
		return
	}
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	pq := *q
	pq.ri = &requestInfo{IsResource: true, Resource: "pods", Namespace: q.ns, Name: q.ri.Name, Verb: "delete"}
	if _, err := s.deleteObject(r.Context(), &pq, q.ri.Name, opts); err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	writeJSON(w, http.StatusCreated, "application/json", &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusSuccess, Code: http.StatusCreated})
}
