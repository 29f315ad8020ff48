package apiserver

import (
	"bytes"
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/raftstore"
)

// followHub streams a shared resource stream's events to one watcher until the watch ends.
// Objects are shared with the other watchers: they are never modified here, and non-table
// encodings are made once per event, media type and conversion. When the hub cuts the
// watcher off for falling behind, it returns the revision its events reached and true: the
// caller goes on from there with a store watch of the watcher's own.
func (s *Server) followHub(ctx context.Context, ws *watchStream, sub *hubSub, sel *selector, bookmarks bool, last int64) (int64, bool) {
	var tick <-chan time.Time
	if bookmarks {
		t := time.NewTicker(s.cfg.BookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	plain := !ws.mt.table
	// A plain or PartialObjectMetadata watcher's frame depends only on the event type, the
	// object, the media type and the conversion: it is encoded (object, WatchEvent,
	// framing) once per event for all such watchers.
	frameOf := func(typ watch.EventType, obj runtime.Object) ([]byte, error) {
		var raw, frame bytes.Buffer
		if ws.mt.partial {
			p, err := partialOf(obj, ws.mt.as.GroupVersion())
			if err != nil {
				return nil, err
			}
			obj = p
		}
		if err := ws.mt.info.Serializer.Encode(obj, &raw); err != nil { // the kind was set when decoded
			return nil, err
		}
		ev := &metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: raw.Bytes()}}
		sz := ws.mt.info.StreamSerializer
		err := streaming.NewEncoder(sz.Framer.NewFrameWriter(&frame), sz.Serializer).Encode(ev)
		return frame.Bytes(), err
	}
	unflushed := false // an event was written and not yet flushed: more were queued
	// handle writes one event; more says whether others are waiting (the write is then not
	// flushed yet). It returns false when the watch must end.
	handle := func(he *hubEvent, more bool) bool {
		last = he.rev
		if he.err != nil {
			ws.sendStatus(he.err)
			return false
		}
		typ, which := s.convertHubEvent(ws.q.rs, sel, he)
		if typ == "" {
			if unflushed && !more {
				ws.flusher.Flush() // the event written before this one was held back
				unflushed = false
			}
			return true
		}
		obj := he.cur
		if which == "prev" {
			obj = he.prev
		}
		var err error
		if plain {
			var frame []byte
			key := string(typ) + "|" + which + "|" + ws.mt.info.MediaType + "|" + ws.mt.as.GroupVersion().String()
			if frame, err = he.frame(key, func() ([]byte, error) { return frameOf(typ, obj) }); err == nil {
				err = ws.sendFrame(frame, !more)
				unflushed = more
			}
		} else {
			err, unflushed = ws.send(typ, obj), false // send flushes
		}
		if err != nil {
			s.cfg.Logger.Debug("watch send", "err", err)
			return false
		}
		return true
	}
	// The backlog first: events from before the subscription, older than anything queued.
	backlog := sub.backlog
	sub.backlog = nil
	for i, e := range backlog {
		if ctx.Err() != nil {
			return 0, false
		}
		he := e.he
		if he == nil {
			he = s.decodeHubEvent(e.ev) // past the hub's decoded window: this watcher's own
		}
		if !sub.wants(he) {
			continue
		}
		if !handle(he, i < len(backlog)-1 || len(sub.ch) > 0) {
			return 0, false
		}
	}
	if unflushed {
		ws.flusher.Flush()
		unflushed = false
	}
	for {
		select {
		case <-ctx.Done():
			return 0, false
		case <-tick:
			last = max(last, sub.skipped.Load())
			if ws.send(watch.Bookmark, s.bookmark(ws.q.rs, last, false)) != nil {
				return 0, false
			}
		case <-sub.done:
			if ctx.Err() != nil {
				return 0, false
			}
			if errors.Is(sub.err, errHubSubscriberSlow) {
				// What was queued before the cut is in order and complete up to its last
				// event: send it, then the caller resumes from there. A 410 instead made a
				// leader's own informers re-list every pod (hundreds of MB at 30,000 pods)
				// after a burst they were a little slow to take.
				for len(sub.ch) > 0 {
					if !handle(<-sub.ch, len(sub.ch) > 0) {
						return 0, false
					}
				}
				if unflushed {
					ws.flusher.Flush()
				}
				return last, true
			}
			var ce *raftstore.CompactedError
			if errors.As(sub.err, &ce) || errors.Is(sub.err, raftstore.ErrWatcherSlow) {
				ws.sendStatus(apierrors.NewResourceExpired("watch fell behind; re-list: " + sub.err.Error()))
			}
			return 0, false
		case he := <-sub.ch:
			if !handle(he, len(sub.ch) > 0) {
				return 0, false
			}
		}
	}
}

// convertHubEvent is convertEvent over a decoded shared event: which object to send
// ("cur" or "prev"), with the same selector semantics.
func (s *Server) convertHubEvent(rs *Resource, sel *selector, he *hubEvent) (watch.EventType, string) {
	match := func(obj runtime.Object, set fields.Set) bool {
		if obj == nil {
			return false
		}
		if sel.labels.Empty() && sel.fields.Empty() {
			return true
		}
		m, err := meta.Accessor(obj)
		if err != nil || !sel.labels.Matches(labels.Set(m.GetLabels())) {
			return false
		}
		return sel.fields.Empty() || sel.fields.Matches(set)
	}
	var curSet, prevSet fields.Set
	if !sel.fields.Empty() {
		curSet, prevSet = he.fieldSets(s, rs)
	}
	curOK, prevOK := match(he.cur, curSet), match(he.prev, prevSet)
	switch {
	case he.typ == raftstore.EventDelete:
		if prevOK {
			return watch.Deleted, "prev"
		}
	case curOK && prevOK:
		return watch.Modified, "cur"
	case curOK:
		return watch.Added, "cur"
	case prevOK:
		return watch.Deleted, "prev"
	}
	return "", ""
}
