package apiserver

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// maxJSONPatchOps bounds a JSON patch, as kube-apiserver does, so that a small body cannot
// make a lot of work.
const maxJSONPatchOps = 10000

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, q *request) {
	wo, err := parseWriteOptions(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, unsupportedMediaType(r.Header.Get("Content-Type")), q.gr(), q.ri.Name)
		return
	}
	pt := types.PatchType(ct)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
	default:
		writeError(w, unsupportedMediaType(ct), q.gr(), q.ri.Name)
		return
	}
	if pt == types.ApplyCBORPatchType {
		writeError(w, unsupportedMediaType(ct), q.gr(), q.ri.Name)
		return
	}
	patch, err := s.readBody(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	if pt == types.ApplyYAMLPatchType {
		s.handleApply(w, r, q, wo, patch)
		return
	}
	out, _, err := s.update(r.Context(), q, wo, func(old runtime.Object, rev int64) (runtime.Object, error) {
		return s.applyPatch(w, q, pt, patch, old, wo)
	})
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	s.writeObject(w, r, q, http.StatusOK, out)
}

// applyPatch applies a JSON, merge or strategic merge patch to the current object's JSON.
// A resourceVersion in the patch is a precondition (stale: 409).
func (s *Server) applyPatch(w http.ResponseWriter, q *request, pt types.PatchType, patch []byte, old runtime.Object, wo writeOptions) (runtime.Object, error) {
	s.codecs.setKind(old)
	cur, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	var patched []byte
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if len(p) > maxJSONPatchOps {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOps, len(p)))
		}
		if patched, err = p.Apply(cur); err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", q.gr(), q.ri.Name, err.Error(), 0, false)
		}
	case types.MergePatchType:
		if patched, err = jsonpatch.MergePatch(cur, patch); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
	case types.StrategicMergePatchType:
		var pm map[string]any
		if err := json.Unmarshal(patch, &pm); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		var cm map[string]any
		if err := json.Unmarshal(cur, &cm); err != nil {
			return nil, err
		}
		schema, err := strategicpatch.NewPatchMetaFromStruct(q.rs.newObject(s.codecs))
		if err != nil {
			return nil, err
		}
		out, err := strategicpatch.StrategicMergeMapPatchUsingLookupPatchMeta(cm, pm, schema)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if patched, err = json.Marshal(out); err != nil {
			return nil, err
		}
	}
	dec, _ := s.codecs.bodyDecoder(&http.Request{Header: http.Header{"Content-Type": {"application/json"}}}, wo.fieldValidation == "Strict")
	into := q.rs.newObject(s.codecs)
	gvk := q.rs.gvk()
	obj, _, err := dec.Decode(patched, &gvk, into)
	if err != nil {
		if runtime.IsStrictDecodingError(err) {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := checkPatchedIdentity(q, obj, old); err != nil {
		return nil, err
	}
	return obj, nil
}

// checkPatchedIdentity refuses patches that rename or move the object, and treats a
// resourceVersion changed by the patch as a precondition. A uid changed by the patch is
// left to validation (422, field is immutable), as kube-apiserver does: the kubelet's
// status patches carry the pod's uid to be sure they reach the pod they meant.
func checkPatchedIdentity(q *request, obj, old runtime.Object) error {
	m, _ := meta.Accessor(obj)
	om, _ := meta.Accessor(old)
	if m.GetName() != om.GetName() || (q.rs.Namespaced && m.GetNamespace() != om.GetNamespace()) {
		return apierrors.NewBadRequest("the name or namespace of the object may not be changed by a patch")
	}
	if m.GetResourceVersion() != om.GetResourceVersion() && m.GetResourceVersion() != "" {
		return errConflict(q)
	}
	return nil
}

// yamlToJSON converts an apply body (YAML or JSON) to JSON.
func yamlToJSON(b []byte) ([]byte, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, apierrors.NewBadRequest("error decoding YAML: " + err.Error())
	}
	return j, nil
}
