package apiserver

import (
	"bytes"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// writeObject negotiates the format and writes obj (an object or a list), converted to a
// Table or PartialObjectMetadata when the client asked for one.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, q *request, code int, obj runtime.Object) {
	mt, err := s.mediaType(r, q)
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
	// meta.k8s.io conversions carry the version asked for (v1beta1 too); the scheme knows v1 only.
	if obj.GetObjectKind().GroupVersionKind().Group != metav1.GroupName {
		s.codecs.setKind(obj)
	}
	return enc.Encode(obj, buf)
}

// transform applies the conversion negotiated with as=, as kube-apiserver's
// doTransformObject: a Status passes unchanged, a conversion that does not fit the object
// (PartialObjectMetadata of a list, PartialObjectMetadataList of one object) is 406.
func (s *Server) transform(r *http.Request, q *request, mt mediaType, obj runtime.Object) (runtime.Object, error) {
	if _, ok := obj.(*metav1.Status); ok {
		return obj, nil
	}
	switch {
	case mt.table:
		include := metav1.IncludeObjectPolicy(r.URL.Query().Get("includeObject"))
		switch include {
		case "", metav1.IncludeNone, metav1.IncludeMetadata, metav1.IncludeObject:
		default:
			return nil, apierrors.NewBadRequest("includeObject must be one of None, Metadata or Object")
		}
		return s.toTable(q.rs, obj, include, mt.as.GroupVersion())
	case mt.as.Kind == kindPartial:
		if meta.IsListType(obj) {
			return nil, errNotAcceptable(fmt.Sprintf("you requested PartialObjectMetadata, but the requested object is a list (%T)", obj))
		}
		return partialOf(obj, mt.as.GroupVersion())
	case mt.as.Kind == kindPartialList:
		if !meta.IsListType(obj) {
			return nil, errNotAcceptable(fmt.Sprintf("you requested PartialObjectMetadataList, but the requested object is not a list (%T)", obj))
		}
		return partialListOf(obj, mt.as.GroupVersion())
	}
	return obj, nil
}

// partialListOf is a list's items as PartialObjectMetadata. The items share their
// ObjectMeta's maps and slices with the list's objects: the result is only encoded.
func partialListOf(obj runtime.Object, gv schema.GroupVersion) (*metav1.PartialObjectMetadataList, error) {
	lm, err := meta.ListAccessor(obj)
	if err != nil {
		return nil, err
	}
	out := &metav1.PartialObjectMetadataList{ListMeta: metav1.ListMeta{ResourceVersion: lm.GetResourceVersion(),
		Continue: lm.GetContinue(), RemainingItemCount: lm.GetRemainingItemCount()}}
	out.SetGroupVersionKind(gv.WithKind(kindPartialList))
	err = meta.EachListItem(obj, func(it runtime.Object) error {
		p, err := partialOf(it, gv)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, *p)
		return nil
	})
	return out, err
}

// partialOf is an object's full ObjectMeta as meta.k8s.io PartialObjectMetadata, sharing
// its maps and slices with obj (upstream's meta.AsPartialObjectMetadata).
func partialOf(obj runtime.Object, gv schema.GroupVersion) (*metav1.PartialObjectMetadata, error) {
	var p *metav1.PartialObjectMetadata
	if already, ok := obj.(*metav1.PartialObjectMetadata); ok {
		cp := *already
		p = &cp
	} else {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		p = meta.AsPartialObjectMetadata(m)
	}
	p.SetGroupVersionKind(gv.WithKind(kindPartial))
	return p, nil
}
