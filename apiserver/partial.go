package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/raftstore"
)

// Metadata-only reads. Every kind's protobuf message keeps its ObjectMeta in field 1, as
// PartialObjectMetadata does, so a metadata client's list (the garbage collector's
// informers, the namespace controller) is served from the stored bytes' field 1 without
// decoding whole objects: raw bytes for protobuf, ObjectMeta alone for JSON and YAML.

// metadataOnly: the list can be answered from ObjectMeta alone. A field selector other
// than on the name or namespace needs the whole object.
func metadataOnly(mt mediaType, sel *selector) bool {
	if !mt.partial {
		return false
	}
	for _, req := range sel.fields.Requirements() {
		if req.Field != "metadata.name" && req.Field != "metadata.namespace" {
			return false
		}
	}
	return true
}

// appendMetadata appends the protobuf fields 1 (metadata) of a stored object's message,
// tags included: a PartialObjectMetadata message with the object's ObjectMeta.
func appendMetadata(dst, raw []byte) ([]byte, error) {
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("stored object: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, fmt.Errorf("stored object: %w", protowire.ParseError(m))
		}
		if num == 1 && typ == protowire.BytesType {
			dst = append(dst, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return dst, nil
}

// appendPartialItem is a PartialObjectMetadata list item made from a stored object.
func appendPartialItem(dst, raw []byte, rv string) ([]byte, error) {
	dst, err := appendMetadata(dst, raw)
	if err != nil {
		return nil, err
	}
	return appendRV(dst, rv), nil
}

// decodePartial reads only the ObjectMeta of a stored object, with its resourceVersion.
func decodePartial(kv raftstore.KV) (*metav1.PartialObjectMetadata, error) {
	raw, err := unknownRaw(kv.Value)
	if err != nil {
		return nil, err
	}
	msg, err := appendMetadata(nil, raw)
	if err != nil {
		return nil, err
	}
	p := &metav1.PartialObjectMetadata{}
	// msg is a PartialObjectMetadata message: field 1 is its ObjectMeta.
	if err := p.Unmarshal(msg); err != nil {
		return nil, fmt.Errorf("decode stored object's metadata: %w", err)
	}
	p.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return p, nil
}

func (s *Server) matchesMeta(rs *Resource, sel *selector, p *metav1.PartialObjectMetadata) bool {
	if !sel.labels.Matches(labels.Set(p.Labels)) {
		return false
	}
	if sel.fields.Empty() {
		return true
	}
	set := fields.Set{"metadata.name": p.Name}
	if rs.Namespaced {
		set["metadata.namespace"] = p.Namespace
	}
	return sel.fields.Matches(set)
}

// listPartial reads a page of matching objects' metadata (metadataOnly must hold).
func (s *Server) listPartial(ctx context.Context, q *request, opts *metav1.ListOptions, sel *selector, mt mediaType) (*metav1.PartialObjectMetadataList, error) {
	gv := mt.as.GroupVersion()
	list := &metav1.PartialObjectMetadataList{}
	page, err := s.listPage(ctx, q, opts, func(kv raftstore.KV) (bool, error) {
		p, err := decodePartial(kv)
		if err != nil {
			return false, err
		}
		if !s.matchesMeta(q.rs, sel, p) {
			return false, nil
		}
		p.SetGroupVersionKind(gv.WithKind(kindPartial))
		list.Items = append(list.Items, *p)
		return true, nil
	}, sel.everything(), s.skipUnselected(q.rs, sel))
	if err != nil {
		return nil, err
	}
	list.SetGroupVersionKind(gv.WithKind(kindPartialList))
	list.ResourceVersion = strconv.FormatInt(page.rev, 10)
	list.Continue = page.cont
	list.RemainingItemCount = page.remaining
	return list, nil
}

// handlePartialList serves a PartialObjectMetadataList: in protobuf straight from the
// stored bytes, otherwise from each object's ObjectMeta alone.
func (s *Server) handlePartialList(w http.ResponseWriter, r *http.Request, q *request, opts *metav1.ListOptions, sel *selector, mt mediaType) {
	if mt.info.MediaType == protobufType {
		s.serveRawList(w, r, q, opts, sel, mt.as.GroupVersion().String(), kindPartialList, appendPartialItem)
		return
	}
	list, err := s.listPartial(r.Context(), q, opts, sel, mt)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	var buf bytes.Buffer
	if err := s.encode(mt.info.Serializer, list, &buf); err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	w.Header().Set("Content-Type", mt.info.MediaType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
