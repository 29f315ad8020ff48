package apiserver

import (
	"bytes"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// writeObject negotiates the format and writes obj (an object or a list), converted to a
// Table or PartialObjectMetadata when the client asked for one.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, q *request, code int, obj runtime.Object) {
	mt, err := s.codecs.negotiate(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	out, err := s.transform(r, q, mt, obj)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	var buf bytes.Buffer
	if err := s.encode(mt.info.Serializer, out, &buf); err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	w.Header().Set("Content-Type", mt.info.MediaType)
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) encode(enc runtime.Encoder, obj runtime.Object, buf *bytes.Buffer) error {
	s.codecs.setKind(obj)
	return enc.Encode(obj, buf)
}

// transform applies the as=Table / as=PartialObjectMetadata conversions.
func (s *Server) transform(r *http.Request, q *request, mt mediaType, obj runtime.Object) (runtime.Object, error) {
	switch {
	case mt.table:
		include := metav1.IncludeObjectPolicy(r.URL.Query().Get("includeObject"))
		switch include {
		case "", metav1.IncludeNone, metav1.IncludeMetadata, metav1.IncludeObject:
		default:
			return nil, apierrors.NewBadRequest("includeObject must be one of None, Metadata or Object")
		}
		return s.toTable(q.rs, obj, include)
	case mt.partial:
		return toPartial(obj)
	}
	return obj, nil
}

func toPartial(obj runtime.Object) (runtime.Object, error) {
	if meta.IsListType(obj) {
		items, err := meta.ExtractList(obj)
		if err != nil {
			return nil, err
		}
		lm, _ := meta.ListAccessor(obj)
		out := &metav1.PartialObjectMetadataList{ListMeta: metav1.ListMeta{ResourceVersion: lm.GetResourceVersion(), Continue: lm.GetContinue(), RemainingItemCount: lm.GetRemainingItemCount()}}
		for _, it := range items {
			p, err := partialOf(it)
			if err != nil {
				return nil, err
			}
			out.Items = append(out.Items, *p)
		}
		return out, nil
	}
	return partialOf(obj)
}

func partialOf(obj runtime.Object) (*metav1.PartialObjectMetadata, error) {
	p := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}}
	om, ok := fieldOf(obj, "ObjectMeta").Interface().(metav1.ObjectMeta)
	if !ok {
		return nil, fmt.Errorf("%T has no ObjectMeta", obj)
	}
	p.ObjectMeta = *om.DeepCopy()
	return p, nil
}
