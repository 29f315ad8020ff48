package apiserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/raftstore"
)

// watchStream writes watch events in the negotiated framing: JSON objects one after the
// other, or length-prefixed protobuf frames.
type watchStream struct {
	s       *Server
	r       *http.Request
	q       *request
	mt      mediaType
	enc     streaming.Encoder
	flusher http.Flusher
	out     io.Writer // the response, for frames encoded once and shared
	buf     bytes.Buffer
}

func (ws *watchStream) send(typ watch.EventType, obj runtime.Object) error {
	out, err := ws.s.transform(ws.r, ws.q, ws.mt, obj)
	if err != nil {
		return err
	}
	ws.buf.Reset()
	if err := ws.s.encode(ws.mt.info.Serializer, out, &ws.buf); err != nil {
		return err
	}
	ev := &metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: ws.buf.Bytes()}}
	if err := ws.enc.Encode(ev); err != nil {
		return err
	}
	ws.flusher.Flush()
	return nil
}

// sendFrame writes an event already framed in the stream's media type, and flushes it to
// the client when flush is set: a watcher with more events queued flushes once after the
// last, as kube-apiserver's watch server does, instead of once per event.
func (ws *watchStream) sendFrame(frame []byte, flush bool) error {
	if _, err := ws.out.Write(frame); err != nil {
		return err
	}
	if flush {
		ws.flusher.Flush()
	}
	return nil
}

func (ws *watchStream) sendStatus(err error) {
	st := toStatus(err, ws.q.gr(), "")
	st.Kind, st.APIVersion = "Status", "v1"
	_ = ws.send(watch.Error, st)
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, q *request) {
	opts := metav1.ListOptions{}
	if err := s.codecs.params.DecodeParameters(r.URL.Query(), coreV1, &opts); err != nil {
		writeError(w, badRequest(err), q.gr(), "")
		return
	}
	sel, err := s.parseSelector(q.rs, &opts)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	mt, err := s.mediaType(r, q)
	if err != nil || mt.info.StreamSerializer == nil {
		if err == nil {
			err = apierrors.NewBadRequest("no streaming serializer for " + mt.info.MediaType)
		}
		writeError(w, err, q.gr(), "")
		return
	}
	switch {
	case mt.as.Kind == kindPartialList:
		// Skiff differs on purpose: upstream answers 200 and then ends the stream at the
		// first event, which it cannot convert; a watch's events are single objects.
		writeError(w, errNotAcceptable("you requested PartialObjectMetadataList, but a watch's events are single objects"), q.gr(), "")
		return
	case mt.table && opts.SendInitialEvents != nil && *opts.SendInitialEvents:
		// As kube-apiserver 1.32: no Table for a watch that starts with the initial events.
		writeError(w, errNotAcceptable(acceptedTypes), q.gr(), "")
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, errors.New("streaming unsupported"), q.gr(), "")
		return
	}
	timeout := s.cfg.WatchTimeout + time.Duration(rand.Int64N(int64(s.cfg.WatchTimeout)))
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if q.ri.Name != "" { // watch by name: kube's fieldSelector=metadata.name=<name>
		opts.FieldSelector = "metadata.name=" + q.ri.Name
		if sel, err = s.parseSelector(q.rs, &opts); err != nil {
			writeError(w, err, q.gr(), "")
			return
		}
	}

	// Where to start: RV ""/"0" (or sendInitialEvents) first sends the current state as
	// ADDED events, then follows from the revision it was read at.
	initial := opts.ResourceVersion == "" || opts.ResourceVersion == "0"
	if opts.SendInitialEvents != nil {
		initial = *opts.SendInitialEvents
	}
	var from int64
	var items []runtime.Object
	// A whole-object watch's initial state is kept as the stored values (shared with the
	// store) and decoded one at a time as it is sent: decoded all at once, an informer's
	// watch-list of 30,000 pods held ~280 MB until its last event was written, several at
	// a time on a leader whose informers restarted.
	var initialKVs []raftstore.KV
	if opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
		if from, err = parseRV(opts.ResourceVersion); err != nil {
			writeError(w, err, q.gr(), "")
			return
		}
	}
	if initial {
		lo := metav1.ListOptions{LabelSelector: opts.LabelSelector, FieldSelector: opts.FieldSelector, ResourceVersion: opts.ResourceVersion}
		if opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
			lo.ResourceVersionMatch = metav1.ResourceVersionMatchNotOlderThan
		}
		lq := *q
		lq.ri = &requestInfo{Resource: q.ri.Resource}
		if metadataOnly(mt, sel) { // a metadata informer's initial events: no whole object decoded
			list, err := s.listPartial(ctx, &lq, &lo, sel, mt)
			if err != nil {
				writeError(w, err, q.gr(), "")
				return
			}
			items, _ = meta.ExtractList(list)
			lm, _ := meta.ListAccessor(list)
			from, _ = strconv.ParseInt(lm.GetResourceVersion(), 10, 64)
		} else {
			var page listPageInfo
			if initialKVs, page, err = s.listKVs(ctx, &lq, &lo, sel); err != nil {
				writeError(w, err, q.gr(), "")
				return
			}
			from = page.rev
		}
	}
	// Join this node's shared stream of the resource when it can start there; otherwise
	// (no server context, a start older than the shared stream's memory) watch the store.
	var watcher *raftstore.Watcher
	sub, leave, shared := s.hubs.subscribe(q.rs, s.objs.prefix(q.rs, q.ns), from, s.watchTrigger(q.rs, sel))
	if shared {
		defer leave()
	} else {
		watcher, err = s.cfg.Store.Watch(ctx, s.objs.prefix(q.rs, q.ns), from)
		if err != nil {
			writeError(w, toStatusErr(err, q), q.gr(), "")
			return
		}
		defer watcher.Stop()
	}
	s.metrics.watchers.WithLabelValues(q.rs.GVR.Resource).Inc()
	defer s.metrics.watchers.WithLabelValues(q.rs.GVR.Resource).Dec()

	contentType := mt.info.MediaType
	if mt.info.MediaType == "application/vnd.kubernetes.protobuf" {
		contentType += ";stream=watch"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	ws := &watchStream{s: s, r: r, q: q, mt: mt, flusher: flusher, out: w,
		enc: streaming.NewEncoder(mt.info.StreamSerializer.Framer.NewFrameWriter(w), mt.info.StreamSerializer.Serializer)}
	for _, it := range items {
		if ws.send(watch.Added, it) != nil {
			return
		}
	}
	for i, kv := range initialKVs { // listKVs kept only what sel picks
		obj, err := s.objs.decode(kv)
		if err != nil {
			ws.sendStatus(err)
			return
		}
		initialKVs[i] = raftstore.KV{} // sent: not pinned by this watch any longer
		if ws.send(watch.Added, obj) != nil {
			return
		}
	}
	initialKVs = nil
	last := from
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents && opts.AllowWatchBookmarks {
		if ws.send(watch.Bookmark, s.bookmark(q.rs, last, true)) != nil {
			return
		}
	}
	if shared {
		resume, ok := s.followHub(ctx, ws, sub, sel, opts.AllowWatchBookmarks, last)
		if !ok {
			return
		}
		leave()
		if watcher, err = s.cfg.Store.Watch(ctx, s.objs.prefix(q.rs, q.ns), resume); err != nil {
			ws.sendStatus(apierrors.NewResourceExpired("watch fell behind; re-list: " + err.Error()))
			return
		}
		defer watcher.Stop()
		last = resume
	}
	s.followWatch(ctx, ws, watcher, sel, opts.AllowWatchBookmarks, last)
}

// followWatch streams the store's events until the watch ends.
func (s *Server) followWatch(ctx context.Context, ws *watchStream, watcher *raftstore.Watcher, sel *selector, bookmarks bool, last int64) {
	var tick <-chan time.Time
	var bookmarkTimer *time.Timer
	if bookmarks {
		bookmarkTimer = time.NewTimer(s.bookmarkDelay(ctx))
		defer bookmarkTimer.Stop()
		tick = bookmarkTimer.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			// The newest revision delivered is always a safe place to resume; so is the
			// store's progress past other prefixes' events, once nothing of ours is queued
			// (a quiet namespace's watch would otherwise resume from its own last event,
			// which the history may have trimmed, and re-list).
			if p := watcher.Progress(); p > last && len(watcher.Events()) == 0 {
				last = p
			}
			if ws.send(watch.Bookmark, s.bookmark(ws.q.rs, last, false)) != nil {
				return
			}
			bookmarkTimer.Reset(s.bookmarkDelay(ctx))
		case ev, ok := <-watcher.Events():
			if !ok {
				if err := watcher.Err(); err != nil && ctx.Err() == nil {
					var ce *raftstore.CompactedError
					if errors.As(err, &ce) || errors.Is(err, raftstore.ErrWatcherSlow) {
						ws.sendStatus(apierrors.NewResourceExpired("watch fell behind; re-list: " + err.Error()))
					}
				}
				return
			}
			typ, obj, err := s.convertEvent(ws.q.rs, sel, ev)
			last = ev.Revision
			if err != nil {
				ws.sendStatus(err)
				return
			}
			if obj == nil {
				continue
			}
			if err := ws.send(typ, obj); err != nil {
				if !errors.Is(err, io.ErrClosedPipe) {
					s.cfg.Logger.Debug("watch send", "err", err)
				}
				return
			}
		}
	}
}

// convertEvent maps a store event to a watch event, with Kubernetes' selector semantics:
// an object that starts matching is ADDED, one that stops matching is DELETED.
func (s *Server) convertEvent(rs *Resource, sel *selector, ev raftstore.Event) (watch.EventType, runtime.Object, error) {
	var cur, prev runtime.Object
	var err error
	if ev.Type == raftstore.EventPut {
		if cur, err = s.objs.decode(ev.KV); err != nil {
			return "", nil, err
		}
	}
	if ev.Prev != nil {
		if prev, err = s.objs.decode(*ev.Prev); err != nil {
			return "", nil, err
		}
	}
	curOK := cur != nil && s.matches(rs, sel, cur)
	prevOK := prev != nil && s.matches(rs, sel, prev)
	switch {
	case ev.Type == raftstore.EventDelete:
		if !prevOK {
			return "", nil, nil
		}
		setRV(prev, ev.Revision) // a deleted object carries the deletion's revision
		return watch.Deleted, prev, nil
	case curOK && prevOK:
		return watch.Modified, cur, nil
	case curOK:
		return watch.Added, cur, nil
	case prevOK:
		setRV(prev, ev.Revision)
		return watch.Deleted, prev, nil
	}
	return "", nil, nil
}

// bookmarkDelay is when a watch that asked for bookmarks gets its next one: every
// BookmarkInterval, and 2 s before the watch's own timeout, as kube-apiserver's watch cache
// does. Clients (client-go's reflector) end their watches every 5 to 10 minutes and resume
// from the last revision they saw; a filtered watch (an agent's pods) may see no event for
// long while the store's bounded history moves on, and would get 410 and re-list. The
// bookmark just before the end hands it a revision seconds old instead.
func (s *Server) bookmarkDelay(ctx context.Context) time.Duration {
	d := s.cfg.BookmarkInterval
	if end, ok := ctx.Deadline(); ok {
		if pre := time.Until(end) - 2*time.Second; pre > 0 && pre < d {
			d = pre
		}
	}
	return d
}

// bookmark is an empty object of the kind carrying only a resourceVersion.
func (s *Server) bookmark(rs *Resource, rev int64, initialEnd bool) runtime.Object {
	obj := rs.newObject(s.codecs)
	m, _ := meta.Accessor(obj)
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return obj
}

// watchTrigger is the exact-match field requirement the shared stream filters on for this
// watcher, if its field selector has one (spec.nodeName=<node> first: the node agents').
func (s *Server) watchTrigger(rs *Resource, sel *selector) *hubTrigger {
	if sel == nil || sel.fields.Empty() {
		return nil
	}
	for _, f := range []string{"spec.nodeName", "metadata.name"} {
		if v, ok := sel.fields.RequiresExactMatch(f); ok {
			return &hubTrigger{s: s, rs: rs, field: f, value: v}
		}
	}
	return nil
}
