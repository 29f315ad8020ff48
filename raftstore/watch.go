package raftstore

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
)

// Watcher delivers the changes under a prefix, in revision order, each exactly once.
// Events is closed when the watch ends; Err then says why: the context ended (its error),
// the watcher fell too far behind (ErrWatcherSlow), its start was compacted or the state
// was replaced by a snapshot (a *CompactedError), or the store closed (ErrClosed). On any of
// these the caller re-lists and watches again from the list's revision.
type Watcher struct {
	events   chan Event
	progress atomic.Int64 // see Progress
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	err      error
}

// Events returns the channel of changes.
func (w *Watcher) Events() <-chan Event { return w.events }

// Progress returns a revision up to which every event of the watched prefix has been put
// on Events: once the consumer has also received everything on Events, it has seen every
// change up to that revision, the events of other prefixes included, and may resume there.
// It lets a watch of a quiet prefix report a recent revision (Kubernetes' bookmarks, etcd's
// progress notifications) instead of the revision of its own last event, which a busy
// store's history may have trimmed by the time the watch resumes.
//
// The consumer's check: read Progress first, then find Events empty (len 0); the events a
// progress covers are on the channel before the progress is published.
func (w *Watcher) Progress() int64 { return w.progress.Load() }

// Err says why Events was closed; nil while the watch runs.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop ends the watch and waits for its goroutine to finish.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

// watchConfig bounds a watcher: its channel buffer, and how many events it may lag behind
// the newest before it is closed so that it never pins memory or slows anyone else.
type watchConfig struct {
	buffer int
	maxLag uint64
}

// watch starts a watcher for events with revisions above from. The watcher pulls from the
// shared history with its own cursor: writers never wait for watchers.
func (f *fsm) watch(ctx context.Context, storeCtx context.Context, wg *sync.WaitGroup, prefix string, from int64, wc watchConfig) (*Watcher, error) {
	f.mu.RLock()
	if from == 0 {
		from = f.rev
	}
	if oldest := f.hist.floor(prefix); from < oldest {
		f.mu.RUnlock()
		return nil, &CompactedError{Requested: from, Oldest: oldest}
	}
	cursor := f.hist.seqAfter(from)
	epoch := f.epoch
	f.mu.RUnlock()

	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{events: make(chan Event, wc.buffer), cancel: cancel, done: make(chan struct{})}
	w.progress.Store(from)
	if f.m != nil {
		f.m.watchers.Inc()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(w.done)
		defer close(w.events)
		defer cancel()
		if f.m != nil {
			defer f.m.watchers.Dec()
		}
		err := f.runWatcher(ctx, storeCtx, w, prefix, from, cursor, epoch, wc)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}()
	return w, nil
}

func (f *fsm) runWatcher(ctx, storeCtx context.Context, w *Watcher, prefix string, from int64, cursor uint64, epoch uint64, wc watchConfig) error {
	out := w.events
	batch := make([]Event, 0, 256)
	last := from // the newest revision delivered, for the error a cut-off watcher gets
	for {
		batch = batch[:0]
		f.mu.RLock()
		if f.epoch == epoch && cursor < f.hist.base && last >= f.hist.floor(prefix) {
			// Only other classes' events were trimmed past this watcher: none it wants.
			cursor = f.hist.base
		}
		if f.epoch != epoch || cursor < f.hist.base {
			err := &CompactedError{Requested: last, Oldest: f.hist.floor(prefix)}
			f.mu.RUnlock()
			return err
		}
		head := f.hist.head()
		// A batch ends between revisions, never inside one (a transaction may write more
		// keys than a batch holds), so that once it is sent, last's revision is whole: the
		// jump past trimmed events above relies on it.
		var scanned int64
		for cursor < head {
			ev := f.hist.at(cursor)
			if len(batch) >= cap(batch) && ev.Revision != scanned {
				break
			}
			scanned = ev.Revision
			cursor++
			if ev.Revision > from && strings.HasPrefix(ev.KV.Key, prefix) {
				batch = append(batch, *ev)
			}
		}
		notify := f.notify
		f.mu.RUnlock()

		for i := range batch {
			if !f.send(ctx, storeCtx, out, &batch[i], cursor, wc.maxLag) {
				return watchEndReason(ctx, storeCtx)
			}
			last = batch[i].Revision
		}
		if scanned > w.progress.Load() {
			w.progress.Store(scanned) // after the sends: see Progress
		}
		if len(batch) > 0 {
			continue // there may be more before waiting
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return ctx.Err()
		case <-storeCtx.Done():
			return ErrClosed
		}
	}
}

// send delivers one event, giving up if the watcher lags more than maxLag events behind the
// newest while its consumer is not reading.
func (f *fsm) send(ctx, storeCtx context.Context, out chan<- Event, ev *Event, cursor, maxLag uint64) bool {
	for {
		f.mu.RLock()
		notify := f.notify
		f.mu.RUnlock()
		if f.headSeq.Load()-cursor > maxLag {
			return false
		}
		select {
		case out <- *ev:
			return true
		case <-notify:
		case <-ctx.Done():
			return false
		case <-storeCtx.Done():
			return false
		}
	}
}

func watchEndReason(ctx, storeCtx context.Context) error {
	if storeCtx.Err() != nil {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return ErrWatcherSlow
}
