package raftstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

// lockedBuffer collects raft's log output from every node.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An isolated leader writes entries into its own log that nobody else gets; after healing it
// clears that suffix ("clearing log suffix") and takes the new leader's entries, and then
// restarts twice (hashicorp/raft-wal#31 failed here) with nothing lost and nothing revived.
func TestDivergentSuffixIsClearedAndSurvivesRestarts(t *testing.T) {
	var raftLog lockedBuffer
	c := rafttest.New(t, 3, rafttest.Options{Tune: func(cfg *raftstore.Config) { cfg.RaftLog = &raftLog }})
	ctx := rafttest.Ctx(t, 60*time.Second)
	old := c.Leader()
	old.Layer.Isolate(true)
	var wg sync.WaitGroup
	for i := range 5 { // stored in the old leader's log before it can learn it lost
		wg.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if _, err := old.Store().Put(wctx, fmt.Sprintf("/lost/%d", i), []byte("minority")); err == nil {
				t.Errorf("the isolated leader acknowledged /lost/%d", i)
			}
		})
	}
	var leader *rafttest.Node
	rafttest.Eventually(t, 10*time.Second, func() error {
		for _, n := range c.Running() {
			if n != old && n.Store().IsLeader() {
				leader = n
				return nil
			}
		}
		return errors.New("no leader on the majority side")
	})
	put := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := leader.Store().Put(ctx, fmt.Sprintf("/kept/%03d", i), []byte("majority")); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(0, 50)
	wg.Wait()
	old.Layer.Isolate(false)
	caughtUp := func(n int) {
		t.Helper()
		rafttest.Eventually(t, 10*time.Second, func() error {
			res, err := old.Store().List(ctx, "/", raftstore.ListOptions{})
			if err != nil {
				return err
			}
			var kept int
			for _, kv := range res.KVs {
				if strings.HasPrefix(kv.Key, "/lost/") {
					t.Fatalf("a write the majority never saw is there: %s", kv.Key)
				}
				kept++
			}
			if kept != n {
				return fmt.Errorf("%d of %d keys", kept, n)
			}
			return nil
		})
	}
	caughtUp(50)
	if !strings.Contains(raftLog.String(), "clearing log suffix") {
		t.Fatalf("the old leader never cleared a log suffix; raft said:\n%s", raftLog.String())
	}
	for round := range 2 {
		old.Stop()
		put(50+10*round, 60+10*round)
		if err := old.Start(); err != nil {
			t.Fatalf("restart %d: %v", round+1, err)
		}
		caughtUp(60 + 10*round)
	}
}

// Recover (raft's RecoverCluster: replay, snapshot, delete the whole log) leaves a survivor
// that starts alone with every committed write.
func TestRecoverKeepsCommittedWritesWithTheNewLog(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	for i := range 30 {
		if _, err := c.Leader().Store().Put(ctx, fmt.Sprintf("/r/%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	survivor := c.Followers()[0]
	rafttest.Eventually(t, 5*time.Second, func() error {
		if rev := survivor.Store().Revision(); rev < 30 {
			return fmt.Errorf("survivor at revision %d", rev)
		}
		return nil
	})
	c.Close()
	err := raftstore.Recover(raftstore.Config{ID: survivor.ID, Dir: survivor.Dir},
		[]raftstore.Server{{ID: survivor.ID, Address: survivor.Addr, Voter: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := survivor.Start(); err != nil {
		t.Fatal(err)
	}
	rafttest.Eventually(t, 10*time.Second, func() error {
		if !survivor.Store().IsLeader() {
			return errors.New("the survivor does not lead")
		}
		return nil
	})
	res, err := survivor.Store().List(ctx, "/r/", raftstore.ListOptions{})
	if err != nil || len(res.KVs) != 30 {
		t.Fatalf("%d keys after recovery, %v", len(res.KVs), err)
	}
	if _, err := survivor.Store().Put(ctx, "/r/after", []byte("v")); err != nil {
		t.Fatal(err)
	}
}
