package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/raftstore"
)

// protobufMagic starts every Kubernetes protobuf object: "k8s\0", then a runtime.Unknown.
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

const protobufType = "application/vnd.kubernetes.protobuf"

// canListRaw: a protobuf list without selectors or conversions needs no object decoded at
// all. Objects are stored as the very protobuf a client reads, so the list is assembled
// from the stored bytes, which is what makes a 10,000-pod list cheap.
func canListRaw(mt mediaType, sel *selector) bool {
	return mt.info.MediaType == protobufType && !mt.table && !mt.partial && sel.labels.Empty() && sel.fields.Empty()
}

// rawList encodes kvs as a List in protobuf, each item made from a stored object's message
// by appendItem. Protobuf merges a repeated embedded message field into the first, and the
// last scalar wins, so an item may carry its resourceVersion as one more metadata field
// appended to the stored message (the stored one is empty).
func rawList(apiVersion, listKind string, kvs []rawItem, page listPageInfo, appendItem func(dst, raw []byte, rv string) ([]byte, error)) ([]byte, error) {
	var items bytes.Buffer
	var item []byte
	for _, kv := range kvs {
		raw, err := unknownRaw(kv.value)
		if err != nil {
			return nil, err
		}
		if item, err = appendItem(item[:0], raw, strconv.FormatInt(kv.modRevision, 10)); err != nil {
			return nil, err
		}
		b := protowire.AppendTag(nil, 2, protowire.BytesType) // <Kind>List.items
		b = protowire.AppendBytes(b, item)
		items.Write(b)
	}
	var lm []byte
	lm = protowire.AppendTag(lm, 2, protowire.BytesType) // ListMeta.resourceVersion
	lm = protowire.AppendString(lm, strconv.FormatInt(page.rev, 10))
	if page.cont != "" {
		lm = protowire.AppendTag(lm, 3, protowire.BytesType) // ListMeta.continue
		lm = protowire.AppendString(lm, page.cont)
	}
	if page.remaining != nil {
		lm = protowire.AppendTag(lm, 4, protowire.VarintType) // ListMeta.remainingItemCount
		lm = protowire.AppendVarint(lm, uint64(*page.remaining))
	}
	list := protowire.AppendTag(make([]byte, 0, items.Len()+len(lm)+16), 1, protowire.BytesType) // <Kind>List.metadata
	list = protowire.AppendBytes(list, lm)
	list = append(list, items.Bytes()...)

	var tm []byte
	tm = protowire.AppendTag(tm, 1, protowire.BytesType) // TypeMeta.apiVersion
	tm = protowire.AppendString(tm, apiVersion)
	tm = protowire.AppendTag(tm, 2, protowire.BytesType) // TypeMeta.kind
	tm = protowire.AppendString(tm, listKind)
	out := make([]byte, 0, len(list)+len(tm)+32)
	out = append(out, protobufMagic...)
	out = protowire.AppendTag(out, 1, protowire.BytesType) // Unknown.typeMeta
	out = protowire.AppendBytes(out, tm)
	out = protowire.AppendTag(out, 2, protowire.BytesType) // Unknown.raw
	out = protowire.AppendBytes(out, list)
	out = protowire.AppendTag(out, 3, protowire.BytesType) // Unknown.contentEncoding
	out = protowire.AppendString(out, "")
	out = protowire.AppendTag(out, 4, protowire.BytesType) // Unknown.contentType
	out = protowire.AppendString(out, "")
	return out, nil
}

// appendRV appends {metadata (field 1 of every kind and of PartialObjectMetadata):
// {resourceVersion: rv}}.
func appendRV(dst []byte, rv string) []byte {
	var m []byte
	m = protowire.AppendTag(m, 6, protowire.BytesType) // ObjectMeta.resourceVersion
	m = protowire.AppendString(m, rv)
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	return protowire.AppendBytes(dst, m)
}

// appendObjectItem is the whole stored object with its resourceVersion.
func appendObjectItem(dst, raw []byte, rv string) ([]byte, error) {
	return appendRV(append(dst, raw...), rv), nil
}

type rawItem struct {
	value       []byte
	modRevision int64
}

// unknownRaw returns the object message inside a stored "k8s\0" + runtime.Unknown value.
func unknownRaw(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, protobufMagic) {
		return nil, errors.New("stored object is not Kubernetes protobuf")
	}
	b := data[len(protobufMagic):]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("stored object: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 2 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, fmt.Errorf("stored object: %w", protowire.ParseError(m))
			}
			return v, nil
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, fmt.Errorf("stored object: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return nil, errors.New("stored object has no raw message")
}

// handleRawList serves a list for canListRaw.
func (s *Server) handleRawList(w http.ResponseWriter, r *http.Request, q *request, opts *metav1.ListOptions) {
	s.serveRawList(w, r, q, opts, q.rs.GVR.GroupVersion().String(), q.rs.Kind+"List", appendObjectItem)
}

// serveRawList writes a protobuf list of kind listKind straight from the stored bytes of
// the page, each item made by appendItem (the whole object, or its metadata alone).
func (s *Server) serveRawList(w http.ResponseWriter, r *http.Request, q *request, opts *metav1.ListOptions, apiVersion, listKind string, appendItem func(dst, raw []byte, rv string) ([]byte, error)) {
	var items []rawItem
	page, err := s.listPage(r.Context(), q, opts, func(kv raftstore.KV) (bool, error) {
		items = append(items, rawItem{value: kv.Value, modRevision: kv.ModRevision})
		return true, nil
	}, true)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	out, err := rawList(apiVersion, listKind, items, page, appendItem)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	w.Header().Set("Content-Type", protobufType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}
