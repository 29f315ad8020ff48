package apiserver

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// The context's end and the bookmark timer wake the goroutine through the subscriber's
	// one slot, so that waiting for the next event is a single channel receive.
	stop := context.AfterFunc(ctx, sub.poke)
	defer stop()
	var bookmarkDue atomic.Bool
	var bookmarkTimer *time.Timer
	if bookmarks {
		bookmarkTimer = time.AfterFunc(s.bookmarkDelay(ctx), func() { bookmarkDue.Store(true); sub.poke() })
		defer bookmarkTimer.Stop()
	}
	plain := !ws.mt.table
	media, as := ws.mt.info.MediaType, ws.mt.as.GroupVersion().String()
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
		// The frame stays in the hub's ring with the event: sized at once, not doubled
		// into up to twice what it holds.
		frame.Grow(raw.Len() + 64)
		sz := ws.mt.info.StreamSerializer
		err := streaming.NewEncoder(sz.Framer.NewFrameWriter(&frame), sz.Serializer).Encode(ev)
		return frame.Bytes(), err
	}
	// write sends one event, unflushed when it can (the caller flushes once per batch, as
	// kube-apiserver's watch server flushes only when no further event is queued for the
	// watcher). wrote says whether the watcher wanted it; ok false ends the watch.
	unflushed := false
	write := func(he *hubEvent) (wrote, ok bool) {
		last = he.rev
		if he.err != nil {
			ws.sendStatus(he.err)
			return false, false
		}
		typ, which := s.convertHubEvent(ws.q.rs, sel, he)
		if typ == "" {
			return false, true
		}
		obj := he.cur
		var err error
		if which == "prev" {
			if obj, err = he.prevObject(s); err != nil {
				ws.sendStatus(err)
				return false, false
			}
		}
		if plain {
			var frame []byte
			if frame, err = he.frame(frameKey{string(typ), which, media, as}, func() ([]byte, error) { return frameOf(typ, obj) }); err == nil {
				err, unflushed = ws.sendFrame(frame, false), true
			}
		} else {
			err, unflushed = ws.send(typ, obj), false // send flushes
		}
		if err != nil {
			s.cfg.Logger.Debug("watch send", "err", err)
			return false, false
		}
		return true, true
	}
	// The backlog first: events from before the subscription, older than anything queued.
	backlog := sub.backlog
	sub.backlog = nil
	for _, e := range backlog {
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
		if _, ok := write(he); !ok {
			return 0, false
		}
	}
	var evs []*hubEvent
	var sent []time.Time // when each event written in a batch reached the shared stream
	for {
		if unflushed {
			ws.flusher.Flush()
			unflushed = false
		}
		<-sub.wake
		if ctx.Err() != nil {
			return 0, false
		}
		var done int64
		var end error
		evs, done, end = sub.take(evs)
		sent = sent[:0]
		for _, he := range evs {
			wrote, ok := write(he)
			if !ok {
				return 0, false
			}
			if wrote {
				sent = append(sent, he.at)
			}
		}
		if unflushed {
			ws.flusher.Flush()
			unflushed = false
		}
		if len(sent) > 0 {
			now := time.Now()
			for _, at := range sent {
				s.metrics.delivery.Observe(now.Sub(at).Seconds())
			}
		}
		clear(evs) // the next take reuses the array; drop the shared events now
		if end != nil {
			if ctx.Err() != nil {
				return 0, false
			}
			if errors.Is(end, errHubSubscriberSlow) {
				// What was queued before the cut is in order and complete up to its last
				// event, and has just been sent: the caller resumes from there. A 410
				// instead made a leader's own informers re-list every pod (hundreds of MB
				// at 30,000 pods) after a burst they were a little slow to take.
				return last, true
			}
			var ce *raftstore.CompactedError
			if errors.As(end, &ce) || errors.Is(end, raftstore.ErrWatcherSlow) {
				ws.sendStatus(apierrors.NewResourceExpired("watch fell behind; re-list: " + end.Error()))
			}
			return 0, false
		}
		if bookmarkDue.Swap(false) {
			// The newest revision delivered, or the hub's delivered as of the last take
			// (everything wanted up to it was in that batch), is a safe place to resume.
			last = max(last, done)
			if ws.send(watch.Bookmark, s.bookmark(ws.q.rs, last, false)) != nil {
				return 0, false
			}
			bookmarkTimer.Reset(s.bookmarkDelay(ctx))
		}
	}
}

// convertHubEvent is convertEvent over a decoded shared event: which object to send
// ("cur" or "prev"), with the same selector semantics.
func (s *Server) convertHubEvent(rs *Resource, sel *selector, he *hubEvent) (watch.EventType, string) {
	curOK, prevOK := he.cur != nil, he.prevKV != nil
	if !sel.everything() {
		cur, prev := he.views(s, rs)
		if he.prevBad {
			return watch.Deleted, "prev" // its decoding error ends the watch, as the hub's did
		}
		curOK = curOK && sel.picks(cur.labels, cur.fields)
		prevOK = prevOK && sel.picks(prev.labels, prev.fields)
	}
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
