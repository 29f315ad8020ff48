package raftstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

// TestFollowersLearnACommitWithoutWaitingForCommitTimeout: a follower applies a write,
// so that its watchers and stale reads see it, as soon as the leader has committed it,
// not with the next write or when CommitTimeout (here 3 s, so 3-6 s) makes the leader
// send an empty append.
func TestFollowersLearnACommitWithoutWaitingForCommitTimeout(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{Tune: func(cfg *raftstore.Config) { cfg.CommitTimeout = 3 * time.Second }})
	ctx := rafttest.Ctx(t, 60*time.Second)
	leader := c.Leader().Store()
	follower := c.Followers()[0].Store()
	w, err := follower.Watch(ctx, "/w/", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := range 5 {
		kv, err := leader.Put(ctx, fmt.Sprintf("/w/%d", i), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		put := time.Now()
		ev := collect(t, w, 1)[0]
		if ev.KV.ModRevision != kv.ModRevision {
			t.Fatalf("event %+v, want revision %d", ev.KV, kv.ModRevision)
		}
		// Far below CommitTimeout, and far above what a loaded machine takes: the test
		// fails if the follower waits for the timer, not if it is slow.
		if d := time.Since(put); d > 1500*time.Millisecond {
			t.Errorf("write %d reached the follower's watch %v after it was committed", i, d)
		}
	}
}
