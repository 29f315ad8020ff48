package apiserver

import (
	"bytes"
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/raftstore"
)

// followHub streams a shared resource stream's events to one watcher until the watch ends.
// Objects are shared with the other watchers: they are never modified here, and plain
// (non-table) encodings are made once per event and media type.
func (s *Server) followHub(ctx context.Context, ws *watchStream, sub *hubSub, sel *selector, bookmarks bool, last int64) {
	var tick <-chan time.Time
	if bookmarks {
		t := time.NewTicker(s.cfg.BookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	plain := !ws.mt.table && !ws.mt.partial
	enc := func(obj runtime.Object) ([]byte, error) {
		var buf bytes.Buffer
		err := ws.mt.info.Serializer.Encode(obj, &buf) // the kind was set when decoded
		return buf.Bytes(), err
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if ws.send(watch.Bookmark, s.bookmark(ws.q.rs, last, false)) != nil {
				return
			}
		case <-sub.done:
			if ctx.Err() == nil {
				var ce *raftstore.CompactedError
				if errors.Is(sub.err, errHubSubscriberSlow) || errors.As(sub.err, &ce) || errors.Is(sub.err, raftstore.ErrWatcherSlow) {
					ws.sendStatus(apierrors.NewResourceExpired("watch fell behind; re-list: " + sub.err.Error()))
				}
			}
			return
		case he := <-sub.ch:
			last = he.rev
			if he.err != nil {
				ws.sendStatus(he.err)
				return
			}
			typ, which := s.convertHubEvent(ws.q.rs, sel, he)
			if typ == "" {
				continue
			}
			var err error
			if plain {
				var raw []byte
				if raw, err = he.encoded(which, ws.mt.info.MediaType, enc); err == nil {
					err = ws.sendRaw(typ, raw)
				}
			} else {
				obj := he.cur
				if which == "prev" {
					obj = he.prev
				}
				err = ws.send(typ, obj)
			}
			if err != nil {
				s.cfg.Logger.Debug("watch send", "err", err)
				return
			}
		}
	}
}

// convertHubEvent is convertEvent over a decoded shared event: which object to send
// ("cur" or "prev"), with the same selector semantics.
func (s *Server) convertHubEvent(rs *Resource, sel *selector, he *hubEvent) (watch.EventType, string) {
	curOK := he.cur != nil && s.matches(rs, sel, he.cur)
	prevOK := he.prev != nil && s.matches(rs, sel, he.prev)
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
