package apiserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/raftstore"
)

// canStreamJSON: a plain JSON list (no Table, no metadata-only conversion) is written item
// by item. Decoding every matching object into the List and encoding it whole held a
// relist of 150,000 pods (kwok's, whose slow watch had been cut off) as 2 GB on the
// serving server for the ten seconds it took; streamed, one decoded object is held at a
// time, as kube-apiserver's streaming list encoder (KEP-5116) does.
func canStreamJSON(mt mediaType) bool {
	return mt.info.MediaType == runtime.ContentTypeJSON && !mt.table && !mt.partial && mt.info.Serializer != nil
}

// serveJSONList writes the page of objects sel picks as the kind's List in JSON, the same
// bytes as encoding the List object whole: the envelope is the encoding of the empty list
// (whose items come last, "items":[]) split around its items, and each item is the
// encoding/json encoding of the object, as the JSON serializer gives it inside a list.
func (s *Server) serveJSONList(w http.ResponseWriter, r *http.Request, q *request, opts *metav1.ListOptions, sel *selector, mt mediaType) {
	kvs, page, err := s.listKVs(r.Context(), q, opts, sel)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	head, tail, err := s.jsonListEnvelope(q, mt, page)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	// The first item is decoded before anything is written, so that a list whose first
	// object cannot be read still gets a Status.
	var first []byte
	if len(kvs) > 0 {
		if first, err = s.jsonItem(kvs[0]); err != nil {
			writeError(w, err, q.gr(), "")
			return
		}
	}
	w.Header().Set("Content-Type", mt.info.MediaType)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.Write(head)
	for i, kv := range kvs {
		item := first
		if i > 0 {
			if item, err = s.jsonItem(kv); err != nil {
				// Too late for a Status: the truncated body fails the client's decoding.
				return
			}
			_ = bw.WriteByte(',')
		}
		if _, err := bw.Write(item); err != nil {
			return // the client is gone
		}
	}
	_, _ = bw.Write(tail)
	_ = bw.Flush()
}

// jsonItem is one list item as the JSON serializer writes it within a list.
func (s *Server) jsonItem(kv raftstore.KV) ([]byte, error) {
	obj, err := s.objs.decode(kv)
	if err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

// jsonListEnvelope is the JSON of the kind's empty List with the page's metadata, split
// where its items go.
func (s *Server) jsonListEnvelope(q *request, mt mediaType, page listPageInfo) (head, tail []byte, err error) {
	list, err := s.codecs.scheme.New(q.rs.GVR.GroupVersion().WithKind(q.rs.Kind + "List"))
	if err != nil {
		return nil, nil, err
	}
	// An empty, not nil, slice: "items":[] as kube-apiserver writes an empty list.
	if err := meta.SetList(list, []runtime.Object{}); err != nil {
		return nil, nil, err
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return nil, nil, err
	}
	lm.SetResourceVersion(strconv.FormatInt(page.rev, 10))
	lm.SetContinue(page.cont)
	lm.SetRemainingItemCount(page.remaining)
	var buf bytes.Buffer
	if err := s.encode(mt.info.Serializer, list, &buf); err != nil {
		return nil, nil, err
	}
	b := buf.Bytes()
	const empty = `"items":[]`
	i := bytes.LastIndex(b, []byte(empty))
	if i < 0 {
		return nil, nil, fmt.Errorf("%sList encodes without an empty items field", q.rs.Kind)
	}
	at := i + len(empty) - 1 // before the closing bracket
	return b[:at], b[at:], nil
}
