package apiserver

import (
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// namespaceFinalizers are a namespace's spec.finalizers ("kubernetes"): the namespace
// controller empties its contents and then clears them through /finalize.
func namespaceFinalizers(obj runtime.Object) []string {
	var out []string
	for _, f := range obj.(*corev1.Namespace).Spec.Finalizers {
		out = append(out, string(f))
	}
	return out
}

func markTerminating(obj runtime.Object) {
	obj.(*corev1.Namespace).Status.Phase = corev1.NamespaceTerminating
}

// handleFinalize replaces a namespace's spec.finalizers; once both kinds of finalizers are
// gone from a namespace being deleted, it is removed.
func (s *Server) handleFinalize(w http.ResponseWriter, r *http.Request, q *request) {
	data, err := s.readBody(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	wo := writeOptions{fieldManager: managerFromUserAgent(r.UserAgent())}
	mq := *q
	mq.ri = &requestInfo{Resource: "namespaces", Subresource: "", Name: q.ri.Name, Verb: "update"}
	body, err := s.decodeBody(w, r, &mq, data, wo)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	want := body.(*corev1.Namespace).Spec.Finalizers
	out, _, err := s.update(r.Context(), &mq, wo, func(old runtime.Object, _ int64) (runtime.Object, error) {
		ns := old.(*corev1.Namespace)
		ns.Spec.Finalizers = want
		return ns, nil
	})
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	s.writeObject(w, r, q, http.StatusOK, out)
}

// allFinalizers is what holds an object marked for deletion.
func allFinalizers(rs *Resource, obj runtime.Object) []string {
	m, _ := meta.Accessor(obj)
	f := m.GetFinalizers()
	if rs.GVR.Resource == "namespaces" {
		f = append(append([]string(nil), f...), namespaceFinalizers(obj)...)
	}
	return f
}
