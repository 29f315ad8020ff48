package raftstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

func TestWritesOnAnyNodeAreReadOnEveryNode(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	for i, n := range c.Nodes {
		key := fmt.Sprintf("/k/%d", i)
		kv, err := n.Store().Create(ctx, key, []byte(n.ID))
		if err != nil {
			t.Fatalf("create on %s: %v", n.ID, err)
		}
		if kv.CreateRevision != kv.ModRevision || kv.ModRevision == 0 {
			t.Fatalf("revisions of a new key: %+v", kv)
		}
	}
	for _, reader := range c.Nodes {
		for i, writer := range c.Nodes {
			kv, err := reader.Store().Get(ctx, fmt.Sprintf("/k/%d", i), raftstore.ReadOptions{})
			if err != nil || string(kv.Value) != writer.ID {
				t.Fatalf("linearizable get on %s of %s's key: %q, %v", reader.ID, writer.ID, kv.Value, err)
			}
		}
		res, err := reader.Store().List(ctx, "/k/", raftstore.ListOptions{})
		if err != nil || len(res.KVs) != 3 {
			t.Fatalf("list on %s: %d keys, %v", reader.ID, len(res.KVs), err)
		}
	}
}

func TestRevisionsAdvanceOnEverySuccessfulWrite(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	s := c.Followers()[0].Store()
	a, err := s.Create(ctx, "/a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/a", []byte("again")); !errors.Is(err, raftstore.ErrKeyExists) {
		t.Fatalf("second create: %v, want ErrKeyExists", err)
	}
	b, err := s.Update(ctx, "/a", []byte("2"), a.ModRevision)
	if err != nil {
		t.Fatal(err)
	}
	if b.ModRevision != a.ModRevision+1 || b.CreateRevision != a.CreateRevision {
		t.Fatalf("after a failed write and an update: %+v then %+v", a, b)
	}
}

func TestCompareAndSwapConflicts(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	f := c.Followers()[0].Store()
	kv, err := f.Create(ctx, "/cas", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leader().Store().Update(ctx, "/cas", []byte("v2"), kv.ModRevision); err != nil {
		t.Fatal(err)
	}
	// The same stale revision now loses, from any node, and changes nothing.
	for _, n := range c.Nodes {
		if _, err := n.Store().Update(ctx, "/cas", []byte("stale"), kv.ModRevision); !errors.Is(err, raftstore.ErrConflict) {
			t.Fatalf("stale update on %s: %v, want ErrConflict", n.ID, err)
		}
		if _, err := n.Store().Delete(ctx, "/cas", kv.ModRevision); !errors.Is(err, raftstore.ErrConflict) {
			t.Fatalf("stale delete on %s: %v, want ErrConflict", n.ID, err)
		}
	}
	got, err := f.Get(ctx, "/cas", raftstore.ReadOptions{})
	if err != nil || string(got.Value) != "v2" {
		t.Fatalf("after stale writes: %q %v", got.Value, err)
	}
	if _, err := f.Update(ctx, "/missing", []byte("x"), 0); !errors.Is(err, raftstore.ErrNotFound) {
		t.Fatalf("update of a missing key: %v", err)
	}
	if _, err := f.Delete(ctx, "/missing", 0); !errors.Is(err, raftstore.ErrNotFound) {
		t.Fatalf("delete of a missing key: %v", err)
	}
	prev, err := f.Delete(ctx, "/cas", got.ModRevision)
	if err != nil || string(prev.Value) != "v2" {
		t.Fatalf("delete returns the old value: %q %v", prev.Value, err)
	}
	if _, err := f.Get(ctx, "/cas", raftstore.ReadOptions{}); !errors.Is(err, raftstore.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestTransactionIsAllOrNothing(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	s := c.Followers()[1].Store()
	x, err := s.Create(ctx, "/t/x", []byte("x0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReadBarrier(ctx); err != nil { // Revision is local: catch up first
		t.Fatal(err)
	}
	before := s.Revision()
	// The last op's condition fails: none of the ops may apply.
	_, err = s.Txn(ctx,
		raftstore.Op{Kind: raftstore.OpCreate, Key: "/t/y", Value: []byte("y")},
		raftstore.Op{Kind: raftstore.OpUpdate, Key: "/t/x", Value: []byte("x1"), IfModRevision: x.ModRevision},
		raftstore.Op{Kind: raftstore.OpDelete, Key: "/t/x", IfModRevision: x.ModRevision + 100},
	)
	var oe *raftstore.OpError
	if !errors.As(err, &oe) || oe.Index != 2 || !errors.Is(err, raftstore.ErrConflict) {
		t.Fatalf("failing txn: %v", err)
	}
	if _, err := s.Get(ctx, "/t/y", raftstore.ReadOptions{}); !errors.Is(err, raftstore.ErrNotFound) {
		t.Fatalf("a failed txn created a key: %v", err)
	}
	if got, _ := s.Get(ctx, "/t/x", raftstore.ReadOptions{}); string(got.Value) != "x0" {
		t.Fatalf("a failed txn changed a key: %q", got.Value)
	}
	if err := s.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Revision() != before {
		t.Fatalf("a failed txn advanced the revision: %d -> %d", before, s.Revision())
	}
	res, err := s.Txn(ctx,
		raftstore.Op{Kind: raftstore.OpCreate, Key: "/t/y", Value: []byte("y")},
		raftstore.Op{Kind: raftstore.OpUpdate, Key: "/t/x", Value: []byte("x1"), IfModRevision: x.ModRevision},
	)
	if err != nil {
		t.Fatal(err)
	}
	if res.Results[0].KV.ModRevision != res.Revision || res.Results[1].KV.ModRevision != res.Revision {
		t.Fatalf("ops of one txn share its revision: %+v", res)
	}
}

func TestLimitsRejectBadWritesAndChangeNothing(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	s := c.Followers()[0].Store()
	if err := s.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.Revision()
	big := bytes.Repeat([]byte("x"), raftstore.DefaultMaxValueSize+1)
	if _, err := s.Put(ctx, "/big", big); !errors.Is(err, raftstore.ErrTooLarge) {
		t.Fatalf("oversized value: %v", err)
	}
	if _, err := s.Put(ctx, string(bytes.Repeat([]byte("k"), 4<<10)), []byte("v")); !errors.Is(err, raftstore.ErrTooLarge) {
		t.Fatalf("oversized key: %v", err)
	}
	if _, err := s.Put(ctx, "", []byte("v")); !errors.Is(err, raftstore.ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := s.Txn(ctx); !errors.Is(err, raftstore.ErrInvalid) {
		t.Fatalf("empty txn: %v", err)
	}
	if _, err := s.List(ctx, "/", raftstore.ListOptions{Continue: "garbage"}); !errors.Is(err, raftstore.ErrInvalid) {
		t.Fatalf("bad continue token: %v", err)
	}
	if s.Revision() != before {
		t.Fatalf("rejected writes advanced the revision")
	}
	// A value at the limit is fine.
	if _, err := s.Put(ctx, "/max", big[:raftstore.DefaultMaxValueSize]); err != nil {
		t.Fatalf("value at the limit: %v", err)
	}
}
