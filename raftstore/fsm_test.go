package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func testFSM() *fsm {
	return newFSM(limits{maxKey: 3 << 10, maxValue: DefaultMaxValueSize}, historyBounds{events: 1000, age: time.Hour}, nil)
}

func applyOps(t testing.TB, f *fsm, index uint64, ops ...Op) *applyResult {
	t.Helper()
	data := encodeTxn(ops)
	stampTime(data, int64(index)*int64(time.Millisecond))
	return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*applyResult)
}

// snapshotBytes serialises the FSM, to compare states byte for byte.
func snapshotBytes(t testing.TB, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBadEntriesAreErrorsAndChangeNothing(t *testing.T) {
	f := testFSM()
	if r := applyOps(t, f, 1, Op{Kind: OpPut, Key: "/a", Value: []byte("1")}); r.err != nil {
		t.Fatal(r.err)
	}
	before := snapshotBytes(t, f)
	good := encodeTxn([]Op{{Kind: OpPut, Key: "/b", Value: []byte("2")}})
	cases := map[string][]byte{
		"empty":          {},
		"short header":   {entryTxn, 0, 0},
		"unknown type":   append([]byte{0x42}, good[1:]...),
		"truncated":      good[:len(good)-2],
		"trailing bytes": append(append([]byte{}, good...), 0xff),
		"zero ops":       append(append([]byte{}, good[:entryHeaderSize]...), 0),
		"huge op count":  append(append([]byte{}, good[:entryHeaderSize]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"huge length":    append(append([]byte{}, good[:entryHeaderSize]...), 1, byte(OpPut), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"bad op kind":    encodeTxn([]Op{{Kind: 9, Key: "/b"}}),
		"empty key":      encodeTxn([]Op{{Kind: OpPut, Key: ""}}),
		"oversized":      encodeTxn([]Op{{Kind: OpPut, Key: "/b", Value: make([]byte, DefaultMaxValueSize+1)}}),
		"negative rev":   encodeTxn([]Op{{Kind: OpUpdate, Key: "/a", IfModRevision: -1}}),
	}
	i := uint64(2)
	for name, data := range cases {
		r := f.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: data}).(*applyResult)
		i++
		if r.err == nil {
			t.Errorf("%s: applied without error", name)
		}
		if !bytes.Equal(snapshotBytes(t, f), before) {
			t.Fatalf("%s: the state changed", name)
		}
	}
	// An unknown type marked ignorable is skipped without error.
	ign := append([]byte{0x40 | flagIgnorable}, good[1:]...)
	if r := f.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: ign}).(*applyResult); r.err != nil {
		t.Fatalf("ignorable entry: %v", r.err)
	}
	if !bytes.Equal(snapshotBytes(t, f), before) {
		t.Fatal("an ignorable entry changed the state")
	}
}

func TestSnapshotRestoresTheSameState(t *testing.T) {
	f := testFSM()
	for i := 0; i < 500; i++ {
		applyOps(t, f, uint64(i+1), Op{Kind: OpPut, Key: fmt.Sprintf("/k/%03d", i%300), Value: []byte(fmt.Sprint(i))})
	}
	applyOps(t, f, 501, Op{Kind: OpDelete, Key: "/k/007"})
	data := snapshotBytes(t, f)
	g := testFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, g), data) {
		t.Fatal("restored state differs")
	}
	if g.rev != f.rev || g.bytes != f.bytes {
		t.Fatalf("restored rev %d bytes %d, want %d %d", g.rev, g.bytes, f.rev, f.bytes)
	}
	// Every truncation and a flipped bit are refused, leaving the state as it was.
	for _, bad := range [][]byte{data[:len(data)/2], data[:len(data)-1], flip(data, len(data)/3)} {
		h := testFSM()
		applyOps(t, h, 1, Op{Kind: OpPut, Key: "/keep", Value: []byte("me")})
		if err := h.Restore(io.NopCloser(bytes.NewReader(bad))); !errors.Is(err, ErrCorruptEntry) {
			t.Fatalf("corrupt snapshot: %v", err)
		}
		if kv, _, err := h.get("/keep"); err != nil || string(kv.Value) != "me" {
			t.Fatal("a refused snapshot changed the state")
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x10
	return c
}

func TestListAtPastRevisionUndoesLaterChanges(t *testing.T) {
	f := testFSM()
	applyOps(t, f, 1, Op{Kind: OpPut, Key: "/x/a", Value: []byte("a1")})
	applyOps(t, f, 2, Op{Kind: OpPut, Key: "/x/b", Value: []byte("b1")})
	at := f.rev
	applyOps(t, f, 3, Op{Kind: OpPut, Key: "/x/a", Value: []byte("a2")})
	applyOps(t, f, 4, Op{Kind: OpDelete, Key: "/x/b"})
	applyOps(t, f, 5, Op{Kind: OpPut, Key: "/x/c", Value: []byte("c1")})
	res, err := f.list("/x/", "", at, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, kv := range res.KVs {
		got += fmt.Sprintf("%s=%s@%d ", kv.Key, kv.Value, kv.ModRevision)
	}
	if got != "/x/a=a1@1 /x/b=b1@2 " {
		t.Fatalf("list at revision %d: %s", at, got)
	}
}

// FuzzDecodeEntry: no input makes decoding or applying panic, and a rejected entry never
// changes the state.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeTxn([]Op{{Kind: OpPut, Key: "/a", Value: []byte("v")}}))
	f.Add(encodeTxn([]Op{{Kind: OpCreate, Key: "/a"}, {Kind: OpDelete, Key: "/b", IfModRevision: 3}}))
	f.Add([]byte{entryTxn | flagIgnorable, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := testFSM()
		applyOps(t, m, 1, Op{Kind: OpPut, Key: "/a", Value: []byte("v")})
		before := snapshotBytes(t, m)
		r := m.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data}).(*applyResult)
		if r.err != nil && !bytes.Equal(snapshotBytes(t, m), before) {
			t.Fatal("a rejected entry changed the state")
		}
	})
}

// BenchmarkSnapshot200kKeys measures snapshotting and restoring a 200k-key state (values of
// 256 bytes, about 60 MB): run with -benchtime=1x.
func BenchmarkSnapshot200kKeys(b *testing.B) {
	f := testFSM()
	val := bytes.Repeat([]byte("v"), 256)
	const n = 200000
	var ops []Op
	for i := 0; i < n; i++ {
		ops = append(ops, Op{Kind: OpPut, Key: fmt.Sprintf("/registry/pods/ns-%03d/pod-%06d", i%100, i), Value: val})
		if len(ops) == 1000 {
			applyOps(b, f, uint64(i+1), ops...)
			ops = ops[:0]
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		data := snapshotBytes(b, f)
		mid := time.Now()
		g := testFSM()
		if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(mid.Sub(start).Milliseconds()), "snapshot-ms")
		b.ReportMetric(float64(time.Since(mid).Milliseconds()), "restore-ms")
		b.ReportMetric(float64(len(data))/1e6, "MB")
	}
}

// TestHistoryBytesBound: the history keeps whole revisions within its byte bound, so a
// watch or past-revision list from before them gets a CompactedError, and a revision whose
// value alone is over the bound is still kept.
func TestHistoryBytesBound(t *testing.T) {
	f := newFSM(limits{maxKey: 3 << 10, maxValue: DefaultMaxValueSize}, historyBounds{events: 1000, bytes: 10 << 10, age: time.Hour}, nil)
	val := make([]byte, 1000)
	for i := uint64(1); i <= 50; i++ {
		if r := applyOps(t, f, i, Op{Kind: OpPut, Key: fmt.Sprintf("/k%d", i%7), Value: val}); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if f.hist.bytes > 10<<10 || f.hist.len() < 9 {
		t.Fatalf("history of %d events, %d bytes; want at least 9 within 10 KiB", f.hist.len(), f.hist.bytes)
	}
	if _, err := f.list("/", "", 30, 0, nil); !errors.As(err, new(*CompactedError)) {
		t.Fatalf("list at a trimmed revision: %v, want a CompactedError", err)
	}
	if _, err := f.list("/", "", 45, 0, nil); err != nil {
		t.Fatalf("list at a kept revision: %v", err)
	}
	// A deleted value stays counted until its event goes.
	if r := applyOps(t, f, 51, Op{Kind: OpDelete, Key: "/k1"}); r.err != nil {
		t.Fatal(r.err)
	}
	if f.hist.bytes > 10<<10 {
		t.Fatalf("after a delete: %d bytes", f.hist.bytes)
	}
	if r := applyOps(t, f, 52, Op{Kind: OpPut, Key: "/big", Value: make([]byte, 20<<10)}); r.err != nil {
		t.Fatal(r.err)
	}
	if f.hist.len() != 1 || f.hist.at(f.hist.base).Revision != f.rev {
		t.Fatalf("after a value over the bound: %d events, want only the newest revision's", f.hist.len())
	}
}

// TestQuietPrefixKeepsItsWindow: a busy resource churning the shared history does not
// expire the revisions of a quiet one. A watch or a list of the quiet prefix from before
// the trimmed revisions works, since none of its events were dropped; the busy prefix
// gets a CompactedError from the same revision.
func TestQuietPrefixKeepsItsWindow(t *testing.T) {
	f := newFSM(limits{maxKey: 3 << 10, maxValue: DefaultMaxValueSize}, historyBounds{events: 10, age: time.Hour}, nil)
	idx := uint64(0)
	put := func(key, value string) int64 {
		t.Helper()
		idx++
		if r := applyOps(t, f, idx, Op{Kind: OpPut, Key: key, Value: []byte(value)}); r.err != nil {
			t.Fatal(r.err)
		}
		return f.rev
	}
	quietRev := put("/registry/quiet/a", "1")
	busyStart := put("/registry/busy/x", "0")
	for i := range 50 {
		put("/registry/busy/x", fmt.Sprint(i))
	}
	if f.hist.compact <= busyStart {
		t.Fatalf("history not trimmed past %d (compact %d): the test needs a churned history", busyStart, f.hist.compact)
	}

	res, err := f.list("/registry/quiet/", "", quietRev, 0, nil)
	if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != "1" {
		t.Fatalf("list of the quiet prefix at %d: %+v, %v", quietRev, res.KVs, err)
	}
	if _, err := f.list("/registry/busy/", "", busyStart, 0, nil); !errors.As(err, new(*CompactedError)) {
		t.Fatalf("list of the busy prefix at a trimmed revision: %v, want a CompactedError", err)
	}
	if _, err := f.list("/registry/", "", quietRev, 0, nil); !errors.As(err, new(*CompactedError)) {
		t.Fatalf("list across classes at a trimmed revision: %v, want a CompactedError", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wc := watchConfig{buffer: 16, maxLag: 1000}
	if _, err := f.watch(ctx, ctx, &wg, "/registry/busy/", busyStart, wc); !errors.As(err, new(*CompactedError)) {
		t.Fatalf("watch of the busy prefix from a trimmed revision: %v, want a CompactedError", err)
	}
	w, err := f.watch(ctx, ctx, &wg, "/registry/quiet/", quietRev, wc)
	if err != nil {
		t.Fatalf("watch of the quiet prefix from %d: %v", quietRev, err)
	}
	defer w.Stop()
	for i := range 30 { // trims again while the watcher waits
		put("/registry/busy/x", fmt.Sprint(i))
	}
	bRev := put("/registry/quiet/b", "2")
	select {
	case ev, ok := <-w.Events():
		if !ok || ev.KV.Key != "/registry/quiet/b" || ev.Revision != bRev {
			t.Fatalf("quiet watcher got %+v (open %v), want /registry/quiet/b at %d; err %v", ev, ok, bRev, w.Err())
		}
	case <-ctx.Done():
		t.Fatal("the quiet watcher got nothing")
	}
}

// TestWatcherGetsAWholeTransactionWhileHistoryChurns: a transaction writing more keys than
// a watcher's batch is delivered whole to a watcher that reads slowly while other classes'
// writes trim that transaction from the history: the watcher never resumes past the
// trimmed part of a revision it had only partly sent.
func TestWatcherGetsAWholeTransactionWhileHistoryChurns(t *testing.T) {
	f := newFSM(limits{maxKey: 3 << 10, maxValue: DefaultMaxValueSize}, historyBounds{events: 1000, age: time.Hour}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	w, err := f.watch(ctx, ctx, &wg, "/registry/pods/", 0, watchConfig{buffer: 1, maxLag: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	const keys = 300
	ops := make([]Op, keys)
	for i := range ops {
		ops[i] = Op{Kind: OpPut, Key: fmt.Sprintf("/registry/pods/p%03d", i), Value: []byte("v")}
	}
	if r := applyOps(t, f, 1, ops...); r.err != nil {
		t.Fatal(r.err)
	}
	txnRev := f.rev
	first := <-w.Events() // the watcher has its first batch in hand
	for i := range 3000 { // trims the transaction out of the history
		if r := applyOps(t, f, uint64(2+i), Op{Kind: OpPut, Key: "/registry/leases/l", Value: []byte(fmt.Sprint(i))}); r.err != nil {
			t.Fatal(r.err)
		}
	}
	got := map[string]bool{first.KV.Key: true}
	for len(got) < keys {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				if errors.As(w.Err(), new(*CompactedError)) {
					return // told it was cut off: acceptable, nothing silently lost
				}
				t.Fatalf("watch ended after %d of %d keys: %v", len(got), keys, w.Err())
			}
			if ev.Revision != txnRev || got[ev.KV.Key] {
				t.Fatalf("event %s at %d after %d keys, want the rest of revision %d once each", ev.KV.Key, ev.Revision, len(got), txnRev)
			}
			got[ev.KV.Key] = true
		case <-ctx.Done():
			t.Fatalf("%d of %d keys of the transaction delivered, then nothing", len(got), keys)
		}
	}
}

// TestListSkipLeavesKeysOutOfPages: keys Skip rejects are neither returned nor counted
// toward Limit, and the continue token resumes after the last key returned.
func TestListSkipLeavesKeysOutOfPages(t *testing.T) {
	f := testFSM()
	for i := range 10 {
		if r := applyOps(t, f, uint64(i+1), Op{Kind: OpPut, Key: fmt.Sprintf("/s/k%d", i), Value: []byte("v")}); r.err != nil {
			t.Fatal(r.err)
		}
	}
	odd := func(key string, _ int64) bool { return (key[len(key)-1]-'0')%2 == 1 }
	var got []string
	start := ""
	for page := 0; ; page++ {
		res, err := f.list("/s/", start, 0, 2, odd)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range res.KVs {
			got = append(got, kv.Key)
		}
		if res.Continue == "" {
			break
		}
		if page > 5 {
			t.Fatal("pages do not end")
		}
		tok, err := decodeContinue(res.Continue)
		if err != nil {
			t.Fatal(err)
		}
		start = tok.Start
	}
	if want := []string{"/s/k0", "/s/k2", "/s/k4", "/s/k6", "/s/k8"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages of the even keys: %v, want %v", got, want)
	}
}
