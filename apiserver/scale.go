package apiserver

import (
	"encoding/json"
	"net/http"
	"strconv"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// serveScale serves <resource>/scale as autoscaling/v1 Scale: get, update, and the merge
// patch kubectl scale sends. Writes change only spec.replicas of the parent.
func (s *Server) serveScale(w http.ResponseWriter, r *http.Request, q *request) {
	switch q.ri.Verb {
	case "get":
		obj, err := s.getObject(r.Context(), q, r.URL.Query().Get("resourceVersion"))
		if err != nil {
			writeError(w, err, q.gr(), q.ri.Name)
			return
		}
		s.writeScale(w, r, q, s.scaleOf(q.rs, obj))
	case "update", "patch":
		data, err := s.readBody(r)
		if err != nil {
			writeError(w, err, q.gr(), q.ri.Name)
			return
		}
		wo, err := parseWriteOptions(r)
		if err != nil {
			writeError(w, err, q.gr(), q.ri.Name)
			return
		}
		pq := *q
		pq.ri = &requestInfo{Resource: q.ri.Resource, Name: q.ri.Name, Namespace: q.ri.Namespace, Verb: q.ri.Verb}
		out, _, err := s.update(r.Context(), &pq, wo, func(old runtime.Object, rev int64) (runtime.Object, error) {
			sc, err := s.newScale(r, q, old, data)
			if err != nil {
				return nil, err
			}
			if sc.ResourceVersion != "" && sc.ResourceVersion != strconv.FormatInt(rev, 10) {
				return nil, errConflict(q)
			}
			q.rs.Scale.Set(old, sc.Spec.Replicas)
			return old, nil
		})
		if err != nil {
			writeError(w, err, q.gr(), q.ri.Name)
			return
		}
		s.writeScale(w, r, q, s.scaleOf(q.rs, out))
	default:
		writeError(w, errMethodNotAllowed(r), q.gr(), q.ri.Name)
	}
}

// newScale is the Scale the client wants: its body (update) or the current Scale patched.
func (s *Server) newScale(r *http.Request, q *request, old runtime.Object, data []byte) (*autoscalingv1.Scale, error) {
	sc := &autoscalingv1.Scale{}
	if q.ri.Verb == "update" {
		if err := json.Unmarshal(data, sc); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return sc, nil
	}
	cur, _ := json.Marshal(s.scaleOf(q.rs, old))
	var patched []byte
	var err error
	switch types.PatchType(mediaTypeOf(r)) {
	case types.MergePatchType:
		patched, err = jsonpatch.MergePatch(cur, data)
	case types.JSONPatchType:
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(data); err == nil {
			patched, err = p.Apply(cur)
		}
	case types.StrategicMergePatchType:
		patched, err = strategicpatch.StrategicMergePatch(cur, data, &autoscalingv1.Scale{})
	default:
		return nil, unsupportedMediaType(r.Header.Get("Content-Type"))
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := json.Unmarshal(patched, sc); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return sc, nil
}

func (s *Server) scaleOf(rs *Resource, obj runtime.Object) *autoscalingv1.Scale {
	m, _ := meta.Accessor(obj)
	spec, status, sel := rs.Scale.Get(obj)
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp()},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: sel},
	}
}

func (s *Server) writeScale(w http.ResponseWriter, r *http.Request, q *request, sc *autoscalingv1.Scale) {
	mt, err := s.codecs.negotiate(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	w.Header().Set("Content-Type", mt.info.MediaType)
	w.WriteHeader(http.StatusOK)
	_ = mt.info.Serializer.Encode(sc, w)
}
