package apiserver

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/skiff-dev/skiff/raftstore"
)

// TestHubSubscriberQueue: a watcher takes what was queued in order, in one batch; one that
// falls hubSubBuffer events behind is cut off with errHubSubscriberSlow after the events
// already queued; a stream's end is reported after what is queued, and only the first
// reason counts.
func TestHubSubscriberQueue(t *testing.T) {
	var delivered atomic.Int64
	sub := &hubSub{wake: make(chan struct{}, 1), delivered: &delivered}
	for rev := int64(1); rev <= 3; rev++ {
		if !sub.push(&hubEvent{rev: rev}) {
			t.Fatalf("push %d refused", rev)
		}
	}
	select {
	case <-sub.wake:
	default:
		t.Fatal("no wake-up after a push")
	}
	evs, _, err := sub.take(nil)
	if err != nil || len(evs) != 3 || evs[0].rev != 1 || evs[2].rev != 3 {
		t.Fatalf("take: %d events, err %v", len(evs), err)
	}
	// What the hub has offered everyone is reported with the events taken: a bookmark
	// after writing them may say it.
	delivered.Store(4)
	if evs, done, _ := sub.take(evs); done != 4 || len(evs) != 0 {
		t.Fatalf("take with nothing queued: %d events, done %d, want 0 and 4", len(evs), done)
	}
	sub.push(&hubEvent{rev: 5})
	delivered.Store(6)
	if evs, done, _ := sub.take(nil); done != 6 || len(evs) != 1 || evs[0].rev != 5 {
		t.Fatalf("take: %d events, done %d, want event 5 and 6", len(evs), done)
	}

	for i := range hubSubBuffer {
		if !sub.push(&hubEvent{rev: int64(10 + i)}) {
			t.Fatalf("push %d of %d refused", i, hubSubBuffer)
		}
	}
	if sub.push(&hubEvent{rev: 1 << 20}) {
		t.Fatal("a push beyond hubSubBuffer queued events was accepted")
	}
	sub.end(raftstore.ErrClosed) // too late: the cut-off is the reason
	evs, _, err = sub.take(nil)
	if len(evs) != hubSubBuffer || !errors.Is(err, errHubSubscriberSlow) {
		t.Fatalf("after the cut-off: %d events, err %v", len(evs), err)
	}
}

// TestEventRingKeepsTheNewestInOrder: past hubRing events the ring hands back the oldest
// as it takes a new one, and reads oldest first.
func TestEventRingKeepsTheNewestInOrder(t *testing.T) {
	var r eventRing
	total := 2*hubRing + 7
	for rev := 1; rev <= total; rev++ {
		old, full := r.push(ringEntry{ev: raftstore.Event{Revision: int64(rev)}})
		if wantFull := rev > hubRing; full != wantFull || (full && old.ev.Revision != int64(rev-hubRing)) {
			t.Fatalf("push %d: replaced %d (full %v)", rev, old.ev.Revision, full)
		}
	}
	if r.len() != hubRing {
		t.Fatalf("len %d, want %d", r.len(), hubRing)
	}
	for i := range r.len() {
		if got, want := r.at(i).ev.Revision, int64(total-hubRing+1+i); got != want {
			t.Fatalf("entry %d: revision %d, want %d", i, got, want)
		}
	}
}
