package apiserver

import (
	"errors"
	"testing"

	"github.com/skiff-dev/skiff/raftstore"
)

// TestHubSubscriberQueue: a watcher takes what was queued in order, in one batch; one that
// falls hubSubBuffer events behind is cut off with errHubSubscriberSlow after the events
// already queued; a stream's end is reported after what is queued, and only the first
// reason counts.
func TestHubSubscriberQueue(t *testing.T) {
	sub := &hubSub{wake: make(chan struct{}, 1)}
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
	sub.skip(4)
	if _, skipped, _ := sub.take(evs); skipped != 4 {
		t.Fatalf("skipped %d with nothing queued, want 4", skipped)
	}
	sub.push(&hubEvent{rev: 5})
	sub.skip(6) // event 5 is still queued: 6 is no safe bookmark yet
	if _, skipped, _ := sub.take(nil); skipped != 4 {
		t.Fatalf("skipped %d with an event queued, want 4", skipped)
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
