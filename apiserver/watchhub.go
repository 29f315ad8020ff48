package apiserver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/raftstore"
)

// hubEvent is one store event decoded once and shared, read-only, by every watcher of
// the resource on this node. prev already carries the event's revision (what a DELETED
// event reports).
type hubEvent struct {
	at   time.Time // when the shared stream received it
	rev  int64
	key  string
	typ  raftstore.EventType
	cur  runtime.Object // nil for a delete
	prev runtime.Object // nil when the put created the key
	err  error          // the stored value did not decode

	encMu sync.Mutex
	enc   map[frameKey][]byte // whole stream frames, for plain watchers

	fieldsOnce            sync.Once
	curFields, prevFields fields.Set // the field selector's view of cur and prev, made once
}

// fieldSets returns the selectable fields of cur and prev (nil for an absent object),
// computed once for all the watchers of the event's resource.
func (e *hubEvent) fieldSets(s *Server, rs *Resource) (cur, prev fields.Set) {
	e.fieldsOnce.Do(func() {
		c := s.selectorCacheOf(rs)
		if e.cur != nil {
			v := s.viewOf(rs, e.rev, e.cur)
			e.curFields = v.fields
			c.put(e.key, v) // the next filtered list need not decode it
		} else {
			c.forget(e.key, e.rev)
		}
		if e.prev != nil {
			e.prevFields = s.fieldSet(rs, e.prev)
		}
	})
	return e.curFields, e.prevFields
}

// hubTrigger is a watcher's exact-match field requirement (a node agent's
// spec.nodeName=<node>), checked by the hub before the event is handed over, as
// kube-apiserver's watch cache does with its indexed triggers: an event that matches the
// watcher neither before nor after the change is not its business, so a thousand node
// watches do not each wake up for every pod event.
type hubTrigger struct {
	s            *Server
	rs           *Resource
	field, value string
}

func (t *hubTrigger) fires(ev *hubEvent) bool {
	if t == nil || ev.err != nil {
		return true
	}
	cur, prev := ev.fieldSets(t.s, t.rs)
	return (cur != nil && cur[t.field] == t.value) || (prev != nil && prev[t.field] == t.value)
}

// frameKey says which stream frame of an event a watcher needs: the event type, which
// object ("cur" or "prev"), the media type and the conversion (as=...;g=;v=). A struct, so
// that looking a frame up allocates nothing per event and watcher.
type frameKey struct {
	typ, which, media, as string
}

// frame returns the event's stream frame for one key, made once for all the watchers
// that share it.
func (e *hubEvent) frame(key frameKey, make func() ([]byte, error)) ([]byte, error) {
	e.encMu.Lock()
	defer e.encMu.Unlock()
	if b, ok := e.enc[key]; ok {
		return b, nil
	}
	b, err := make()
	if err != nil {
		return nil, err
	}
	if e.enc == nil {
		e.enc = map[frameKey][]byte{}
	}
	e.enc[key] = b
	return b, nil
}

// hubRing is how many recent events a hub keeps so that a watch starting a little in the
// past (a list just read, a client resuming) joins the shared stream.
const hubRing = 4096

// hubHot is how many of the newest ring events keep their decoded, shared form (objects,
// field sets, encoded frames). Older ones keep only the store's event, whose values the
// store holds anyway, and a watch starting that far back decodes them for itself: the
// decoded ring was 100 MB of a leader's 400 MB live heap after 3,000 pods were scheduled
// (a decoded pod weighs several times its stored bytes, twice with its previous state),
// for the rare watch that starts seconds in the past.
const hubHot = 512

// hubSubBuffer bounds a subscriber's queue; one that falls this far behind is cut off so
// that it never holds up the others, and goes on from where it got to with a store watch of
// its own (followHub).
const hubSubBuffer = 2048

var errHubSubscriberSlow = errors.New("watcher fell behind the shared stream")

// watchHubs is the per-node watch fan-out: one store watch per resource, each event decoded
// once, then handed to every watcher of that resource on this node.
type watchHubs struct {
	s    *Server
	mu   sync.Mutex
	ctx  context.Context // set by Serve; without it watches use their own store watch
	wg   *sync.WaitGroup
	hubs map[string]*watchHub // by store prefix
}

type watchHub struct {
	hs     *watchHubs
	prefix string
	cancel context.CancelFunc

	mu    sync.Mutex
	start int64 // the ring holds every event after start
	last  int64 // newest revision received
	ring  []ringEntry
	subs  map[*hubSub]struct{}
	err   error // set when the store watch ended
}

// ringEntry is one event of a hub's ring: the store's event, and its shared decoded form
// while it is among the newest hubHot (nil after).
type ringEntry struct {
	ev raftstore.Event
	he *hubEvent
}

// hubSub is one watcher's queue. The hub appends under mu and pokes wake; the watcher
// takes everything queued at once. One receive on a one-slot channel per wake-up, and one
// flush per batch, cost the serving goroutine less than a select over its event, bookmark,
// cut-off and context channels for every event: with a thousand watchers on two cores
// that select was a sixth of a server's CPU in the fan-out, time the next event waits for.
type hubSub struct {
	keyPrefix string // the namespace's (or the resource's) key prefix
	from      int64
	trigger   *hubTrigger   // nil: every event under keyPrefix
	wake      chan struct{} // one slot: something was queued, the watch ended, or a bookmark is due

	mu sync.Mutex
	q  []*hubEvent
	// skipped is the newest revision the trigger filtered out while nothing was queued for
	// the subscriber: every event it wants up to there has been taken, so a bookmark may
	// report it.
	skipped int64
	err     error // set when the hub cut the subscriber off or its stream ended; after q
	// backlog is the ring's events after from when the subscriber joined, gone through by
	// its own goroutine before anything queued.
	backlog []ringEntry
}

// poke wakes the watcher's goroutine; a wake-up already pending covers this one too.
func (s *hubSub) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// push queues an event, or cuts the subscriber off (false) when hubSubBuffer events are
// already waiting: a watcher that far behind must not hold up the others.
func (s *hubSub) push(ev *hubEvent) bool {
	s.mu.Lock()
	ok := s.err == nil && len(s.q) < hubSubBuffer
	if ok {
		s.q = append(s.q, ev)
	} else if s.err == nil {
		s.err = errHubSubscriberSlow
	}
	s.mu.Unlock()
	s.poke()
	return ok
}

// skip notes an event the trigger filtered out (see skipped).
func (s *hubSub) skip(rev int64) {
	s.mu.Lock()
	if len(s.q) == 0 {
		s.skipped = rev
	}
	s.mu.Unlock()
}

// end records why the subscriber's stream ended, after what is already queued.
func (s *hubSub) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.poke()
}

// take returns the queued events (in order, reusing buf's array), the newest skipped
// revision, and the error that ended the stream once nothing is left before it.
func (s *hubSub) take(buf []*hubEvent) ([]*hubEvent, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.q
	s.q = buf[:0]
	return evs, s.skipped, s.err
}

func (hs *watchHubs) run(ctx context.Context, wg *sync.WaitGroup) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.ctx, hs.wg, hs.hubs = ctx, wg, map[string]*watchHub{}
}

// subscribe joins the shared stream of a resource (prefix "/registry/<resource>/") for events
// after from under keyPrefix (the resource's or one namespace's). ok is false when the shared stream cannot serve that start
// (no hub yet at a later revision, events already gone from the ring): the caller then
// uses a store watch of its own.
func (hs *watchHubs) subscribe(prefix, keyPrefix string, from int64, trigger *hubTrigger) (*hubSub, func(), bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.ctx == nil || hs.ctx.Err() != nil || from <= 0 {
		return nil, nil, false
	}
	h := hs.hubs[prefix]
	if h == nil {
		ctx, cancel := context.WithCancel(hs.ctx)
		w, err := hs.s.cfg.Store.Watch(ctx, prefix, from)
		if err != nil {
			cancel()
			return nil, nil, false
		}
		h = &watchHub{hs: hs, prefix: prefix, cancel: cancel, start: from, last: from, subs: map[*hubSub]struct{}{}}
		hs.hubs[prefix] = h
		hs.wg.Add(1)
		go func() {
			defer hs.wg.Done()
			h.pump(ctx, w)
		}()
	}
	sub := &hubSub{keyPrefix: keyPrefix, from: from, trigger: trigger, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil || from < h.start {
		return nil, nil, false
	}
	// The ring's events after from are the subscriber's backlog, handed over as they are
	// (the older ones not decoded) for its own goroutine to go through before the queue:
	// queued here, a backlog longer than the queue blocked the hub under its lock, and
	// decoding it here held up every other watcher of the resource.
	for i := range h.ring {
		if e := h.ring[i]; e.ev.Revision > from && strings.HasPrefix(e.ev.KV.Key, keyPrefix) {
			sub.backlog = append(sub.backlog, e)
		}
	}
	h.subs[sub] = struct{}{}
	return sub, func() { hs.unsubscribe(h, sub) }, true
}

func (s *hubSub) wants(ev *hubEvent) bool {
	return ev.rev > s.from && strings.HasPrefix(ev.key, s.keyPrefix) && s.trigger.fires(ev)
}

// unsubscribe leaves the hub; the last one out stops the store watch.
func (hs *watchHubs) unsubscribe(h *watchHub, sub *hubSub) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h.mu.Lock()
	delete(h.subs, sub)
	empty := len(h.subs) == 0
	h.mu.Unlock()
	if empty && hs.hubs[h.prefix] == h {
		delete(hs.hubs, h.prefix)
		h.cancel()
	}
}

// pump decodes each store event once and hands it to the subscribers.
func (h *watchHub) pump(ctx context.Context, w *raftstore.Watcher) {
	defer w.Stop()
	for ev := range w.Events() {
		he := h.hs.s.decodeHubEvent(ev)
		h.mu.Lock()
		h.last = ev.Revision
		if len(h.ring) == hubRing {
			h.start = h.ring[0].ev.Revision
			copy(h.ring, h.ring[1:])
			h.ring = h.ring[:hubRing-1]
		}
		h.ring = append(h.ring, ringEntry{ev: ev, he: he})
		if n := len(h.ring); n > hubHot {
			h.ring[n-1-hubHot].he = nil // subscribers still holding it keep it alive
		}
		for sub := range h.subs {
			if !sub.wants(he) {
				sub.skip(he.rev)
				continue
			}
			if !sub.push(he) {
				delete(h.subs, sub)
			}
		}
		h.mu.Unlock()
	}
	err := w.Err()
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = raftstore.ErrClosed
	}
	h.hs.mu.Lock()
	if h.hs.hubs[h.prefix] == h {
		delete(h.hs.hubs, h.prefix)
	}
	h.hs.mu.Unlock()
	h.mu.Lock()
	h.err = err
	for sub := range h.subs {
		sub.end(err)
		delete(h.subs, sub)
	}
	h.mu.Unlock()
}

func (s *Server) decodeHubEvent(ev raftstore.Event) *hubEvent {
	he := &hubEvent{at: time.Now(), rev: ev.Revision, key: ev.KV.Key, typ: ev.Type}
	if ev.Type == raftstore.EventPut {
		if he.cur, he.err = s.objs.decode(ev.KV); he.err == nil {
			s.codecs.setKind(he.cur)
		}
	}
	if ev.Prev != nil && he.err == nil {
		if he.prev, he.err = s.objs.decode(*ev.Prev); he.err == nil {
			setRV(he.prev, ev.Revision)
			s.codecs.setKind(he.prev)
		}
	}
	return he
}
