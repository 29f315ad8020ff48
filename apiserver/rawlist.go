package apiserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/raftstore"
)

// protobufMagic starts every Kubernetes protobuf object: "k8s\0", then a runtime.Unknown.
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

const protobufType = "application/vnd.kubernetes.protobuf"

// canListRaw: a protobuf list without conversions needs no object decoded to be written.
// Objects are stored as the very protobuf a client reads, so the list is assembled from
// the stored bytes, which is what makes a 10,000-pod list cheap; selectors are answered
// from the selector cache (a miss decodes the object once, to check it, and drops it).
func canListRaw(mt mediaType) bool {
	return mt.info.MediaType == protobufType && !mt.table && !mt.partial
}

// rawList is a protobuf List of stored objects, each item made from a stored object's
// message by appendItem. Protobuf merges a repeated embedded message field into the first,
// and the last scalar wins, so an item may carry its resourceVersion as one more metadata
// field appended to the stored message (the stored one is empty).
//
// It is sized first and then written item by item (writeTo), because the outer messages
// are length-prefixed: building the response in memory took three buffers the size of the
// list (items, list, response), about 90 MB of garbage per 10,000-pod list, which set the
// serving server's peak RSS through the garbage collector's headroom.
type rawList struct {
	head, tail []byte
	kvs        []rawItem
	appendItem func(dst, raw []byte, rv string) ([]byte, error)
	size       int
}

func newRawList(apiVersion, listKind string, kvs []rawItem, page listPageInfo, appendItem func(dst, raw []byte, rv string) ([]byte, error)) (*rawList, error) {
	// First pass: every item's size, and every stored value checked, so that writeTo cannot
	// fail halfway for a bad value after the response has started.
	itemsLen := 0
	var item []byte
	for _, kv := range kvs {
		raw, err := unknownRaw(kv.value)
		if err != nil {
			return nil, err
		}
		if item, err = appendItem(item[:0], raw, strconv.FormatInt(kv.modRevision, 10)); err != nil {
			return nil, err
		}
		itemsLen += protowire.SizeTag(2) + protowire.SizeBytes(len(item))
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
	listLen := protowire.SizeTag(1) + protowire.SizeBytes(len(lm)) + itemsLen

	var tm []byte
	tm = protowire.AppendTag(tm, 1, protowire.BytesType) // TypeMeta.apiVersion
	tm = protowire.AppendString(tm, apiVersion)
	tm = protowire.AppendTag(tm, 2, protowire.BytesType) // TypeMeta.kind
	tm = protowire.AppendString(tm, listKind)
	head := append([]byte(nil), protobufMagic...)
	head = protowire.AppendTag(head, 1, protowire.BytesType) // Unknown.typeMeta
	head = protowire.AppendBytes(head, tm)
	head = protowire.AppendTag(head, 2, protowire.BytesType) // Unknown.raw: the <Kind>List
	head = protowire.AppendVarint(head, uint64(listLen))
	head = protowire.AppendTag(head, 1, protowire.BytesType) // <Kind>List.metadata
	head = protowire.AppendBytes(head, lm)
	var tail []byte
	tail = protowire.AppendTag(tail, 3, protowire.BytesType) // Unknown.contentEncoding
	tail = protowire.AppendString(tail, "")
	tail = protowire.AppendTag(tail, 4, protowire.BytesType) // Unknown.contentType
	tail = protowire.AppendString(tail, "")
	return &rawList{head: head, tail: tail, kvs: kvs, appendItem: appendItem,
		size: len(head) + itemsLen + len(tail)}, nil
}

// writeTo writes the list; w should be buffered (each item is a few small writes).
func (l *rawList) writeTo(w io.Writer) error {
	if _, err := w.Write(l.head); err != nil {
		return err
	}
	var item, pre []byte
	for _, kv := range l.kvs {
		raw, err := unknownRaw(kv.value)
		if err != nil { // checked by newRawList: the stored values are immutable
			return err
		}
		if item, err = l.appendItem(item[:0], raw, strconv.FormatInt(kv.modRevision, 10)); err != nil {
			return err
		}
		pre = protowire.AppendTag(pre[:0], 2, protowire.BytesType) // <Kind>List.items
		pre = protowire.AppendVarint(pre, uint64(len(item)))
		if _, err := w.Write(pre); err != nil {
			return err
		}
		if _, err := w.Write(item); err != nil {
			return err
		}
	}
	_, err := w.Write(l.tail)
	return err
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
func (s *Server) handleRawList(w http.ResponseWriter, r *http.Request, q *request, opts *metav1.ListOptions, sel *selector) {
	s.serveRawList(w, r, q, opts, sel, q.rs.GVR.GroupVersion().String(), q.rs.Kind+"List", appendObjectItem)
}

// serveRawList writes a protobuf list of kind listKind straight from the stored bytes of
// the page's objects that sel picks, each item made by appendItem (the whole object, or
// its metadata alone).
func (s *Server) serveRawList(w http.ResponseWriter, r *http.Request, q *request, opts *metav1.ListOptions, sel *selector, apiVersion, listKind string, appendItem func(dst, raw []byte, rv string) ([]byte, error)) {
	var items []rawItem
	page, err := s.listPage(r.Context(), q, opts, func(kv raftstore.KV) (bool, error) {
		if ok, _, err := s.selects(q.rs, sel, kv); err != nil || !ok {
			return false, err
		}
		items = append(items, rawItem{value: kv.Value, modRevision: kv.ModRevision})
		return true, nil
	}, sel.everything(), s.skipUnselected(q.rs, sel))
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	list, err := newRawList(apiVersion, listKind, items, page, appendItem)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	w.Header().Set("Content-Type", protobufType)
	w.Header().Set("Content-Length", strconv.Itoa(list.size))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	if list.writeTo(bw) == nil {
		_ = bw.Flush() // a client gone mid-list is not the server's error
	}
}
