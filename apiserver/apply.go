package apiserver

import (
	"errors"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/raftstore"
)

// handleApply is server-side apply (application/apply-patch+yaml): apimachinery's field
// manager merges the applied configuration into the live object and tracks ownership;
// conflicts with other managers are 409 unless force=true. A missing object is created.
func (s *Server) handleApply(w http.ResponseWriter, r *http.Request, q *request, wo writeOptions, body []byte) {
	manager := r.URL.Query().Get("fieldManager")
	if manager == "" {
		writeError(w, apierrors.NewInvalid(q.rs.gvk().GroupKind(), q.ri.Name, field.ErrorList{
			field.Required(field.NewPath("fieldManager"), "is required for apply patch")}), q.gr(), q.ri.Name)
		return
	}
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	js, err := yamlToJSON(body)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	dec, _ := s.codecs.bodyDecoder(&http.Request{Header: http.Header{"Content-Type": {"application/json"}}}, wo.fieldValidation == "Strict")
	gvk := q.rs.gvk()
	applied, _, err := dec.Decode(js, &gvk, q.rs.newObject(s.codecs))
	if err != nil {
		writeError(w, apierrors.NewBadRequest(err.Error()), q.gr(), q.ri.Name)
		return
	}
	am, _ := meta.Accessor(applied)
	if am.GetName() != q.ri.Name {
		writeError(w, apierrors.NewBadRequest("the name of the applied object does not match the name on the URL"), q.gr(), q.ri.Name)
		return
	}
	fm, err := s.fieldManager(q.rs, q.ri.Subresource, false)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	wo.applied = true
	wo.fieldManager = manager
	apply := func(live runtime.Object) (runtime.Object, error) {
		return fm.Apply(live, applied.DeepCopyObject(), manager, force)
	}
	out, _, err := s.update(r.Context(), q, wo, func(old runtime.Object, _ int64) (runtime.Object, error) {
		return apply(old)
	})
	code := http.StatusOK
	if isNotFound(err) && q.ri.Subresource == "" {
		var obj runtime.Object
		if obj, err = apply(q.rs.newObject(s.codecs)); err == nil {
			m, _ := meta.Accessor(obj)
			m.SetNamespace(q.ns)
			out, err = s.create(r.Context(), q, obj, wo)
			code = http.StatusCreated
		}
	}
	if err != nil {
		if errors.Is(err, raftstore.ErrKeyExists) {
			err = errConflict(q)
		}
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	s.writeObject(w, r, q, code, out)
}
