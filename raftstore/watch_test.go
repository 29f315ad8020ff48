package raftstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

// collect reads n events from w, failing the test on a timeout or an early end.
func collect(t *testing.T, w *raftstore.Watcher, n int) []raftstore.Event {
	t.Helper()
	var out []raftstore.Event
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch ended after %d of %d events: %v", len(out), n, w.Err())
			}
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("only %d of %d events", len(out), n)
		}
	}
	return out
}

func TestWatchSeesEveryChangeInOrderOnEveryNode(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 60*time.Second)
	start := c.Leader().Store().Revision()
	var watchers []*raftstore.Watcher
	for _, n := range c.Nodes {
		w, err := n.Store().Watch(ctx, "/w/", start)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watchers = append(watchers, w)
	}
	// Writes through every node, including keys outside the prefix that must not show.
	const n = 60
	for i := 0; i < n; i++ {
		s := c.Nodes[i%3].Store()
		key := fmt.Sprintf("/w/%d", i%7)
		if _, err := s.Put(ctx, key, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "/other", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if _, err := s.Delete(ctx, key, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := n + n/10
	for i, w := range watchers {
		evs := collect(t, w, want)
		last := start
		for j, ev := range evs {
			if ev.Revision <= last {
				t.Fatalf("node %d event %d: revision %d after %d", i, j, ev.Revision, last)
			}
			last = ev.Revision
			if ev.Type == raftstore.EventDelete && (ev.Prev == nil || len(ev.KV.Value) != 0) {
				t.Fatalf("delete event without its previous value: %+v", ev)
			}
		}
		select {
		case ev := <-w.Events():
			t.Fatalf("node %d: extra event %+v", i, ev)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestWatchResumesFromARevision(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	s := c.Followers()[0].Store()
	var revs []int64
	for i := 0; i < 10; i++ {
		kv, err := s.Put(ctx, "/r/k", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, kv.ModRevision)
	}
	// Resuming from the 5th write sees exactly the 6th to 10th, with their previous values.
	w, err := s.Watch(ctx, "/r/", revs[4])
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	evs := collect(t, w, 5)
	for i, ev := range evs {
		if ev.Revision != revs[5+i] || string(ev.KV.Value) != fmt.Sprint(5+i) || string(ev.Prev.Value) != fmt.Sprint(4+i) {
			t.Fatalf("event %d: rev %d value %q prev %q", i, ev.Revision, ev.KV.Value, ev.Prev.Value)
		}
	}
}

func TestWatchFromBeforeTheHistoryIsCompacted(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{Tune: func(cfg *raftstore.Config) { cfg.HistoryEvents = 20 }})
	ctx := rafttest.Ctx(t, 30*time.Second)
	s := c.Leader().Store()
	first, err := s.Put(ctx, "/c/k", []byte("0"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "/c/", first.ModRevision) // started in time, then left unread
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := 0; i < 50; i++ {
		if _, err := s.Put(ctx, "/c/k", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Watch(ctx, "/c/", first.ModRevision)
	var ce *raftstore.CompactedError
	if !errors.As(err, &ce) || !errors.Is(err, raftstore.ErrCompacted) {
		t.Fatalf("watch from a compacted revision: %v", err)
	}
	if ce.Oldest <= first.ModRevision || ce.Oldest > s.Revision() {
		t.Fatalf("oldest available revision %d, first %d, now %d", ce.Oldest, first.ModRevision, s.Revision())
	}
	// The oldest revision it names works.
	w2, err := s.Watch(ctx, "/c/", ce.Oldest)
	if err != nil {
		t.Fatalf("watch from the oldest available revision: %v", err)
	}
	w2.Stop()
	if _, err := s.List(ctx, "/c/", raftstore.ListOptions{Revision: first.ModRevision}); !errors.Is(err, raftstore.ErrCompacted) {
		t.Fatalf("list at a compacted revision: %v", err)
	}
}

func TestSlowWatcherIsClosedWithoutBlockingWrites(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{Tune: func(cfg *raftstore.Config) {
		cfg.WatchBuffer = 4
		cfg.WatchMaxLag = 50
	}})
	ctx := rafttest.Ctx(t, 30*time.Second)
	s := c.Leader().Store()
	slow, err := s.Watch(ctx, "/s/", 0) // never read
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Stop()
	fast, err := s.Watch(ctx, "/s/", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Stop()
	done := make(chan []raftstore.Event)
	go func() {
		var evs []raftstore.Event
		for ev := range fast.Events() {
			evs = append(evs, ev)
			if len(evs) == 200 {
				break
			}
		}
		done <- evs
	}()
	for i := 0; i < 200; i++ {
		if _, err := s.Put(ctx, fmt.Sprintf("/s/%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case evs := <-done:
		if len(evs) != 200 {
			t.Fatalf("the reading watcher got %d of 200 events", len(evs))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reading watcher was held up")
	}
	rafttest.Eventually(t, 10*time.Second, func() error {
		if !errors.Is(slow.Err(), raftstore.ErrWatcherSlow) {
			return fmt.Errorf("slow watcher error: %v", slow.Err())
		}
		return nil
	})
}

func TestListPagesReadOneConsistentRevision(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	s := c.Followers()[0].Store()
	for i := 0; i < 25; i++ {
		if _, err := s.Create(ctx, fmt.Sprintf("/p/%02d", i), []byte("v0")); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.List(ctx, "/p/", raftstore.ListOptions{Limit: 10})
	if err != nil || len(page.KVs) != 10 || page.Continue == "" {
		t.Fatalf("first page: %d keys, continue %q, %v", len(page.KVs), page.Continue, err)
	}
	// Change the keyspace under the pager: delete a later key, update one, add one.
	if _, err := s.Delete(ctx, "/p/15", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "/p/20", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/p/12a", []byte("new")); err != nil {
		t.Fatal(err)
	}
	all := page.KVs
	for page.Continue != "" {
		page, err = c.Nodes[2].Store().List(ctx, "/p/", raftstore.ListOptions{Limit: 10, Continue: page.Continue})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.KVs...)
	}
	if len(all) != 25 {
		t.Fatalf("paged list saw %d keys, want the 25 of the first page's revision", len(all))
	}
	for i, kv := range all {
		if kv.Key != fmt.Sprintf("/p/%02d", i) || string(kv.Value) != "v0" {
			t.Fatalf("key %d: %s=%s", i, kv.Key, kv.Value)
		}
	}
	now, err := s.List(ctx, "/p/", raftstore.ListOptions{})
	if err != nil || len(now.KVs) != 25 || now.Revision <= all[0].ModRevision {
		t.Fatalf("current list: %d keys at %d, %v", len(now.KVs), now.Revision, err)
	}
}

// A watch of a quiet prefix still learns how far the store has gone: its progress follows
// other prefixes' writes, so that it can resume from there rather than from its own last
// event (Kubernetes' bookmarks).
func TestWatchProgressFollowsOtherPrefixes(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	s := c.Followers()[0].Store()
	first, err := s.Put(ctx, "/quiet/k", []byte("0"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "/quiet/", first.ModRevision)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if p := w.Progress(); p != first.ModRevision {
		t.Fatalf("progress at the start %d, want the start revision %d", p, first.ModRevision)
	}
	var busy int64
	for i := 0; i < 20; i++ {
		kv, err := s.Put(ctx, fmt.Sprintf("/busy/k%d", i), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		busy = kv.ModRevision
	}
	for deadline := time.Now().Add(10 * time.Second); w.Progress() < busy; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("progress %d, want %d after the other prefix's writes", w.Progress(), busy)
		}
	}
	select {
	case ev := <-w.Events():
		t.Fatalf("a quiet prefix's watch got %s", ev.KV.Key)
	default:
	}
	own, err := s.Put(ctx, "/quiet/k", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if ev := collect(t, w, 1)[0]; ev.Revision != own.ModRevision {
		t.Fatalf("event at %d, want %d", ev.Revision, own.ModRevision)
	}
	for deadline := time.Now().Add(10 * time.Second); w.Progress() < own.ModRevision; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) { // published just after the send
			t.Fatalf("progress %d behind the event received (%d)", w.Progress(), own.ModRevision)
		}
	}
}
