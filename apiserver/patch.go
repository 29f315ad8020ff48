package apiserver

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	kjson "sigs.k8s.io/json"
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
	wo.readsOld = true // applyPatch builds a new object from old's JSON or map
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
	if pt == types.StrategicMergePatchType && wo.fieldValidation != "Strict" {
		if obj, ok := s.strategicPatchObject(q, patch, old); ok {
			return obj, checkPatchedIdentity(q, obj, old)
		}
	}
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
		schema, err := s.patchMeta(q.rs)
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
	if err != nil { // strict-decoding errors included: both are the client's
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := checkPatchedIdentity(q, obj, old); err != nil {
		return nil, err
	}
	return obj, nil
}

// strategicPatchObject applies a strategic merge patch the way kube-apiserver's patcher
// does (strategicPatchObject, applyPatchToObject): the current object to a map with the
// unstructured converter, the patch onto it, and the map straight back into a new object,
// instead of marshalling the object to JSON, parsing that into a map, and marshalling and
// decoding the result again (most of a status patch's CPU besides the field manager).
// ok is false when it cannot decide the outcome alone (a patch that is not an object or
// names apiVersion or kind, a conversion error): the JSON path then decides, and reports
// its errors as before.
func (s *Server) strategicPatchObject(q *request, patch []byte, old runtime.Object) (runtime.Object, bool) {
	var pm map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(patch, &pm); err != nil || pm == nil {
		return nil, false
	}
	if _, ok := pm["apiVersion"]; ok {
		return nil, false
	}
	if _, ok := pm["kind"]; ok {
		return nil, false
	}
	src, managed := old, leavesManagedFields(pm)
	if managed {
		// managedFields go round the map as parsed JSON (FieldsV1) and back, the largest
		// part of a pod's conversion; a patch that cannot touch them leaves them as they
		// are, so they are left out of the map and copied over.
		src = withoutManagedFields(old)
	}
	// Likewise the top-level parts the patch does not name (a status patch's spec): with
	// no directive at the top, the patch leaves them as they are.
	untouched := untouchedParts(src, pm)
	if len(untouched) > 0 {
		if src == old {
			src = shallowCopy(old)
		}
		v := reflect.ValueOf(src).Elem()
		for _, name := range untouched {
			f := v.FieldByName(name)
			f.Set(reflect.Zero(f.Type()))
		}
	}
	cm, err := runtime.DefaultUnstructuredConverter.ToUnstructured(src)
	if err != nil {
		return nil, false
	}
	schema, err := s.patchMeta(q.rs)
	if err != nil {
		return nil, false
	}
	out, err := strategicpatch.StrategicMergeMapPatchUsingLookupPatchMeta(cm, pm, schema)
	if err != nil {
		return nil, false
	}
	obj := q.rs.newObject(s.codecs)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(out, obj); err != nil {
		return nil, false
	}
	for _, name := range untouched {
		copyField(obj, old, name)
	}
	if managed {
		om, _ := meta.Accessor(old)
		m, _ := meta.Accessor(obj)
		var mf []metav1.ManagedFieldsEntry
		for _, e := range om.GetManagedFields() {
			mf = append(mf, *e.DeepCopy())
		}
		m.SetManagedFields(mf)
	}
	return obj, true
}

// leavesManagedFields tells a strategic merge patch that cannot change
// metadata.managedFields: no directive at the top or in metadata (a $patch: replace or
// $retainKeys there could drop them) and no managedFields of its own.
func leavesManagedFields(pm map[string]any) bool {
	for k := range pm {
		if strings.HasPrefix(k, "$") {
			return false
		}
	}
	md, ok := pm["metadata"]
	if !ok {
		return true
	}
	mm, ok := md.(map[string]any)
	if !ok {
		return false
	}
	for k := range mm {
		if k == "managedFields" || strings.HasPrefix(k, "$") {
			return false
		}
	}
	return true
}

// untouchedParts names the struct fields of obj (a pointer to a struct) that a strategic
// merge patch leaves as they are and that can be deep-copied alone: top-level parts (by
// their JSON names) the patch does not name, of struct types with a generated DeepCopy,
// when the patch has no directive at the top ($patch, $retainKeys, $setElementOrder).
func untouchedParts(obj runtime.Object, pm map[string]any) []string {
	for k := range pm {
		if strings.HasPrefix(k, "$") {
			return nil
		}
	}
	v := reflect.ValueOf(obj)
	if _, ok := obj.(runtime.Unstructured); ok || v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	var out []string
	t := v.Elem().Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous || !f.IsExported() || f.Type.Kind() != reflect.Struct {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if _, named := pm[name]; named {
			continue
		}
		if m, ok := reflect.PointerTo(f.Type).MethodByName("DeepCopy"); !ok || m.Type.NumOut() != 1 || m.Type.Out(0) != reflect.PointerTo(f.Type) {
			continue
		}
		out = append(out, f.Name)
	}
	return out
}

// shallowCopy is a new struct holding obj's fields (obj: a pointer to a struct).
func shallowCopy(obj runtime.Object) runtime.Object {
	v := reflect.ValueOf(obj)
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	out, _ := cp.Interface().(runtime.Object)
	return out
}

// withoutManagedFields is a shallow copy of obj (a pointer to a struct embedding
// ObjectMeta) without managedFields; obj itself is not changed. An unstructured object
// (whose copy would share its map) is returned as it is.
func withoutManagedFields(obj runtime.Object) runtime.Object {
	if _, ok := obj.(runtime.Unstructured); ok {
		return obj
	}
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return obj
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	out, ok := cp.Interface().(runtime.Object)
	if !ok {
		return obj
	}
	m, err := meta.Accessor(out)
	if err != nil {
		return obj
	}
	m.SetManagedFields(nil)
	return out
}

// patchMeta is the strategic merge patch schema of a resource's Go type, built once.
func (s *Server) patchMeta(rs *Resource) (strategicpatch.LookupPatchMeta, error) {
	if m, ok := s.patchMetas.Load(rs); ok {
		return m.(strategicpatch.LookupPatchMeta), nil
	}
	m, err := strategicpatch.NewPatchMetaFromStruct(rs.newObject(s.codecs))
	if err != nil {
		return nil, err
	}
	s.patchMetas.Store(rs, m)
	return m, nil
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
