package apiserver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/raftstore"
)

// hubEvent is one store event decoded once and shared, read-only, by every watcher of
// the resource on this node. The previous value is decoded only when a watcher is sent it
// (a DELETED event, an object leaving a selector) or a selector needs it and the selector
// cache has no view of it: most events are updates that every watcher gets as MODIFIED
// with the new object, and decoding both halves was a quarter of a follower's CPU while
// 10,000 pods were scheduled.
type hubEvent struct {
	at     time.Time // when the shared stream received it
	rev    int64
	key    string
	typ    raftstore.EventType
	cur    runtime.Object // nil for a delete
	err    error          // the stored value did not decode
	prevKV *raftstore.KV  // nil when the put created the key

	prevOnce sync.Once
	prev     runtime.Object // prevKV decoded, carrying the event's revision (what a DELETED event reports)
	prevErr  error

	encMu sync.Mutex
	enc   map[frameKey][]byte // whole stream frames, for plain watchers

	viewsOnce         sync.Once
	curView, prevView selectorView // what selectors see of cur and prev, made once
	prevBad           bool         // prevKV did not decode (set by views)
}

// prevObject is the previous object, decoded on first use.
func (e *hubEvent) prevObject(s *Server) (runtime.Object, error) {
	e.prevOnce.Do(func() {
		if e.prevKV == nil {
			return
		}
		if e.prev, e.prevErr = s.objs.decode(*e.prevKV); e.prevErr == nil {
			setRV(e.prev, e.rev)
			s.codecs.setKind(e.prev)
		}
	})
	return e.prev, e.prevErr
}

// views returns what label and field selectors see of cur and prev (meaningful only for an
// object that exists: cur for a put, prev when prevKV is set), computed once for all the
// watchers of the event's resource. prev's view comes from the selector cache when it
// holds that revision, as it does when this node's hub saw the previous write.
func (e *hubEvent) views(s *Server, rs *Resource) (cur, prev selectorView) {
	e.viewsOnce.Do(func() {
		c := s.selectorCacheOf(rs)
		if e.prevKV != nil { // before cur's view replaces it in the cache
			if v, ok := c.get(e.key, e.prevKV.ModRevision); ok {
				e.prevView = v
			} else if obj, err := e.prevObject(s); err == nil {
				e.prevView = s.viewOf(rs, e.prevKV.ModRevision, obj)
			} else {
				e.prevBad = true // every watcher is offered it, and one sent it gets the error
			}
		}
		if e.cur != nil {
			e.curView = s.viewOf(rs, e.rev, e.cur)
			c.put(e.key, e.curView) // the next filtered list need not decode it
		} else {
			c.forget(e.key, e.rev)
		}
	})
	return e.curView, e.prevView
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
	cur, prev := ev.views(t.s, t.rs)
	if ev.prevBad {
		return true
	}
	return (ev.cur != nil && cur.fields.Get(t.field) == t.value) || (ev.prevKV != nil && prev.fields.Get(t.field) == t.value)
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
	rs     *Resource
	prefix string
	cancel context.CancelFunc

	mu    sync.Mutex
	start int64 // the ring holds every event after start
	last  int64 // newest revision received
	ring  eventRing
	subs  map[*hubSub]struct{} // every subscriber
	// The subscribers again, by trigger: an event is offered to the untriggered ones and
	// to those whose trigger value the object had before or has after the change, as
	// kube-apiserver's watch cache does with its indexed triggers; a thousand node
	// agents' watches were otherwise each asked about every pod event.
	untriggered map[*hubSub]struct{}
	triggered   map[triggerKey]map[*hubSub]struct{}
	fields      map[string]int // trigger fields in use, with how many subscribers
	err         error          // set when the store watch ended
	// delivered is the newest revision whose event has been offered to every subscriber:
	// a subscriber that reads it before taking its queue has everything it wants up to
	// there, so a bookmark may report it (see hubSub.take).
	delivered atomic.Int64
}

// triggerKey is one exact field requirement of a trigger.
type triggerKey struct{ field, value string }

// add registers sub, with h.mu held.
func (h *watchHub) add(sub *hubSub) {
	h.subs[sub] = struct{}{}
	t := sub.trigger
	if t == nil {
		h.untriggered[sub] = struct{}{}
		return
	}
	k := triggerKey{t.field, t.value}
	if h.triggered[k] == nil {
		h.triggered[k] = map[*hubSub]struct{}{}
	}
	h.triggered[k][sub] = struct{}{}
	h.fields[t.field]++
}

// remove forgets sub, with h.mu held.
func (h *watchHub) remove(sub *hubSub) {
	if _, ok := h.subs[sub]; !ok {
		return
	}
	delete(h.subs, sub)
	t := sub.trigger
	if t == nil {
		delete(h.untriggered, sub)
		return
	}
	k := triggerKey{t.field, t.value}
	if delete(h.triggered[k], sub); len(h.triggered[k]) == 0 {
		delete(h.triggered, k)
	}
	if h.fields[t.field]--; h.fields[t.field] == 0 {
		delete(h.fields, t.field)
	}
}

// offer hands he to every subscriber that wants it, with h.mu held; one too far behind is
// cut off.
func (h *watchHub) offer(he *hubEvent) {
	give := func(subs map[*hubSub]struct{}) {
		for sub := range subs {
			if sub.wants(he) && !sub.push(he) {
				h.remove(sub)
			}
		}
	}
	give(h.untriggered)
	if len(h.fields) == 0 {
		return
	}
	var cur, prev selectorView
	if he.err == nil {
		cur, prev = he.views(h.hs.s, h.rs)
	}
	if he.err != nil || he.prevBad { // undecodable: every watcher gets the error
		for _, subs := range h.triggered {
			give(subs)
		}
		return
	}
	for f := range h.fields {
		var was string
		if he.prevKV != nil {
			was = prev.fields.Get(f)
			give(h.triggered[triggerKey{f, was}])
		}
		if now := cur.fields.Get(f); he.cur != nil && (he.prevKV == nil || now != was) {
			give(h.triggered[triggerKey{f, now}])
		}
	}
}

// ringEntry is one event of a hub's ring: the store's event, and its shared decoded form
// while it is among the newest hubHot (nil after).
type ringEntry struct {
	ev raftstore.Event
	he *hubEvent
}

// eventRing holds a hub's newest hubRing events, oldest first, in a circular buffer: the
// slice shifted by one for every event copied 4,096 entries (with the collector's write
// barriers) each time, a fifth of a follower's hub work while pods were scheduled.
type eventRing struct {
	buf  []ringEntry // len hubRing once full
	head int         // index of the oldest entry once full
}

func (r *eventRing) len() int { return len(r.buf) }

// at returns the i-th oldest entry.
func (r *eventRing) at(i int) *ringEntry { return &r.buf[(r.head+i)%len(r.buf)] }

// push appends e, returning the entry it replaced (ok false while the ring was not full).
func (r *eventRing) push(e ringEntry) (old ringEntry, ok bool) {
	if len(r.buf) < hubRing {
		r.buf = append(r.buf, e)
		return ringEntry{}, false
	}
	old, r.buf[r.head] = r.buf[r.head], e
	r.head = (r.head + 1) % len(r.buf)
	return old, true
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

	mu        sync.Mutex
	q         []*hubEvent
	delivered *atomic.Int64 // the hub's
	err       error         // set when the hub cut the subscriber off or its stream ended; after q
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

// end records why the subscriber's stream ended, after what is already queued.
func (s *hubSub) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.poke()
}

// take returns the queued events (in order, reusing buf's array), a revision up to which
// they are everything the subscriber wants (the hub's delivered, read first), and the
// error that ended the stream once nothing is left before it.
func (s *hubSub) take(buf []*hubEvent) ([]*hubEvent, int64, error) {
	done := s.delivered.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.q
	s.q = buf[:0]
	return evs, done, s.err
}

func (hs *watchHubs) run(ctx context.Context, wg *sync.WaitGroup) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.ctx, hs.wg, hs.hubs = ctx, wg, map[string]*watchHub{}
}

// subscribe joins the shared stream of a resource (its store prefix "/registry/<resource>/")
// for events after from under keyPrefix (the resource's or one namespace's). ok is false when the shared stream cannot serve that start
// (no hub yet at a later revision, events already gone from the ring): the caller then
// uses a store watch of its own.
func (hs *watchHubs) subscribe(rs *Resource, keyPrefix string, from int64, trigger *hubTrigger) (*hubSub, func(), bool) {
	prefix := hs.s.objs.prefix(rs, "")
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
		h = &watchHub{hs: hs, rs: rs, prefix: prefix, cancel: cancel, start: from, last: from, subs: map[*hubSub]struct{}{},
			untriggered: map[*hubSub]struct{}{}, triggered: map[triggerKey]map[*hubSub]struct{}{}, fields: map[string]int{}}
		h.delivered.Store(from)
		hs.hubs[prefix] = h
		hs.wg.Add(1)
		go func() {
			defer hs.wg.Done()
			h.pump(ctx, w)
		}()
	}
	sub := &hubSub{keyPrefix: keyPrefix, from: from, trigger: trigger, wake: make(chan struct{}, 1), delivered: &h.delivered}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil || from < h.start {
		return nil, nil, false
	}
	// The ring's events after from are the subscriber's backlog, handed over as they are
	// (the older ones not decoded) for its own goroutine to go through before the queue:
	// queued here, a backlog longer than the queue blocked the hub under its lock, and
	// decoding it here held up every other watcher of the resource.
	for i := range h.ring.len() {
		if e := *h.ring.at(i); e.ev.Revision > from && strings.HasPrefix(e.ev.KV.Key, keyPrefix) {
			sub.backlog = append(sub.backlog, e)
		}
	}
	h.add(sub)
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
	h.remove(sub)
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
	// complete moves delivered on, with nothing in hand: a revision whose events all went
	// out, or past it the store's progress once nothing is left on the channel (the quiet
	// resource's bookmarks then follow the store's other writes).
	complete := func(rev int64) {
		if p := w.Progress(); len(w.Events()) == 0 && p > rev {
			rev = p
		}
		if rev > h.delivered.Load() {
			h.delivered.Store(rev)
		}
	}
	tick := time.NewTicker(time.Second) // the store's progress when this resource is quiet
	defer tick.Stop()
pumping:
	for {
		var ev raftstore.Event
		select {
		case <-tick.C:
			complete(0)
			continue
		case e, ok := <-w.Events():
			if !ok {
				break pumping
			}
			ev = e
		}
		he := h.hs.s.decodeHubEvent(ev)
		h.mu.Lock()
		h.last = ev.Revision
		if old, full := h.ring.push(ringEntry{ev: ev, he: he}); full {
			h.start = old.ev.Revision
		}
		if n := h.ring.len(); n > hubHot {
			h.ring.at(n - 1 - hubHot).he = nil // subscribers still holding it keep it alive
		}
		h.offer(he)
		h.mu.Unlock()
		// A transaction's events share a revision and may come one by one: only the
		// revisions before this one are surely complete, unless the progress says more.
		complete(ev.Revision - 1)
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
		h.remove(sub)
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
	he.prevKV = ev.Prev
	return he
}
