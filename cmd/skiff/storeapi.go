package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/skiff-dev/skiff/raftstore"
)

// storeAPI is store-node's HTTP/1.1 client API, small on purpose (the real door to the
// store is the apiserver):
//
//	PUT /v1/kv?key=K          body is the value; replies {"key","revision"} once committed
//	GET /v1/kv?key=K          linearizable read (&stale=true: local); the value, 404 if absent
//	GET /v1/watch?prefix=P    &from=R optional; one JSON line per event, flushed per event
//	GET /v1/status            this node's view: id, leader, revision
type storeAPI struct {
	store *raftstore.Store
	log   *slog.Logger
}

// maxBody bounds a request body a little above the store's own value limit, so the store
// answers a too-large value with its error rather than the reader cutting it.
const maxBody = raftstore.DefaultMaxValueSize + 1<<10

func newStoreAPI(s *raftstore.Store, log *slog.Logger) http.Handler {
	a := &storeAPI{store: s, log: log}
	m := http.NewServeMux()
	m.HandleFunc("PUT /v1/kv", a.put)
	m.HandleFunc("GET /v1/kv", a.get)
	m.HandleFunc("GET /v1/watch", a.watch)
	m.HandleFunc("GET /v1/status", a.status)
	return m
}

func (a *storeAPI) put(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	val, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		a.fail(w, fmt.Errorf("%w: body: %v", raftstore.ErrTooLarge, err))
		return
	}
	kv, err := a.store.Put(r.Context(), key, val)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"key": kv.Key, "revision": kv.ModRevision})
}

func (a *storeAPI) get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kv, err := a.store.Get(r.Context(), q.Get("key"), raftstore.ReadOptions{Stale: q.Get("stale") == "true"})
	if err != nil {
		a.fail(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Create-Revision", strconv.FormatInt(kv.CreateRevision, 10))
	h.Set("X-Mod-Revision", strconv.FormatInt(kv.ModRevision, 10))
	_, _ = w.Write(kv.Value)
}

// watchLine is one event on the watch stream; an ERROR line ends a stream the store cut
// (fell behind, compacted, closed) so the client can tell it from a network failure.
type watchLine struct {
	Type     string `json:"type"`
	Key      string `json:"key,omitempty"`
	Revision int64  `json:"revision,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (a *storeAPI) watch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var from int64
	if s := q.Get("from"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			a.fail(w, fmt.Errorf("%w: from=%q", raftstore.ErrInvalid, s))
			return
		}
		from = v
	}
	wt, err := a.store.Watch(r.Context(), q.Get("prefix"), from)
	if err != nil {
		a.fail(w, err)
		return
	}
	defer wt.Stop()
	// Headers go out only now, after the watcher is registered: a client that has them
	// knows every later change will reach it.
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	enc := json.NewEncoder(w)
	for ev := range wt.Events() {
		if enc.Encode(watchLine{Type: ev.Type.String(), Key: ev.KV.Key, Revision: ev.Revision}) != nil || rc.Flush() != nil {
			return // the client went away
		}
	}
	if err := wt.Err(); err != nil && !errors.Is(err, context.Canceled) {
		_ = enc.Encode(watchLine{Type: "ERROR", Error: err.Error()})
		_ = rc.Flush()
	}
}

func (a *storeAPI) status(w http.ResponseWriter, _ *http.Request) {
	id, addr := a.store.Leader()
	writeJSON(w, map[string]any{
		"id": a.store.ID(), "leader_id": id, "leader_addr": addr,
		"is_leader": a.store.IsLeader(), "revision": a.store.Revision(),
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers with the HTTP status that matches the store's sentinel error.
func (a *storeAPI) fail(w http.ResponseWriter, err error) {
	code := statusFor(err)
	if code >= 500 {
		a.log.Warn("request failed", "err", err)
	}
	http.Error(w, err.Error(), code)
}

func statusFor(err error) int {
	switch {
	case errors.Is(err, raftstore.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, raftstore.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, raftstore.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, raftstore.ErrCompacted):
		return http.StatusGone
	case errors.Is(err, raftstore.ErrConflict), errors.Is(err, raftstore.ErrKeyExists):
		return http.StatusConflict
	case errors.Is(err, raftstore.ErrNotLeader), errors.Is(err, raftstore.ErrNoLeader), errors.Is(err, raftstore.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, raftstore.ErrIndeterminate):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}
