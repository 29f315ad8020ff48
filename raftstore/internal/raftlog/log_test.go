package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// small segments (each from a spare) so that tests cross segment boundaries quickly.
var smallOpts = Options{SegmentSize: 4 << 10}

func entry(i, term uint64) *raft.Log {
	return &raft.Log{
		Index: i, Term: term, Type: raft.LogCommand,
		Data:       []byte(fmt.Sprintf("entry %d term %d %s", i, term, bytes.Repeat([]byte{'x'}, int(i%97)))),
		AppendedAt: time.Unix(0, int64(i)*1000+7),
	}
}

func entries(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(i, term))
	}
	return out
}

func open(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func mustStore(t testing.TB, l *Log, logs []*raft.Log) {
	t.Helper()
	if err := l.StoreLogs(logs); err != nil {
		t.Fatalf("store %d-%d: %v", logs[0].Index, logs[len(logs)-1].Index, err)
	}
}

// check asserts the log holds exactly first..last with the given terms' contents.
func check(t testing.TB, l *Log, first, last uint64, term func(i uint64) uint64) {
	t.Helper()
	f, _ := l.FirstIndex()
	la, _ := l.LastIndex()
	if f != first || la != last {
		t.Fatalf("range %d-%d, want %d-%d", f, la, first, last)
	}
	if last == 0 {
		return
	}
	for _, i := range []uint64{first - 1, last + 1} {
		var got raft.Log
		if err := l.GetLog(i, &got); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("get %d outside the log: %v", i, err)
		}
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := l.GetLog(i, &got); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		sameEntry(t, &got, entry(i, term(i)))
	}
}

func sameEntry(t testing.TB, got, want *raft.Log) {
	t.Helper()
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("entry %d: got %+v, want %+v", want.Index, got, want)
	}
}

func term(n uint64) func(uint64) uint64 { return func(uint64) uint64 { return n } }

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(m)
	return m
}

func TestStoreGetReopenAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, smallOpts)
	check(t, l, 0, 0, nil)
	mustStore(t, l, entries(1, 1, 1))
	for i := uint64(2); i <= 200; i += 7 {
		mustStore(t, l, entries(i, i+6, 1))
	}
	check(t, l, 1, 204, term(1))
	if n := len(segFiles(t, dir)); n < 5 {
		t.Fatalf("%d segments, want several", n)
	}
	l.Close()
	l = open(t, dir, smallOpts)
	defer l.Close()
	check(t, l, 1, 204, term(1))
	mustStore(t, l, entries(205, 210, 1))
	check(t, l, 1, 210, term(1))
}

func TestStoreRejectsOverlapAndNonConsecutive(t *testing.T) {
	l := open(t, t.TempDir(), smallOpts)
	defer l.Close()
	mustStore(t, l, entries(1, 5, 1))
	if err := l.StoreLogs(entries(5, 6, 2)); err == nil {
		t.Fatal("overlapping store succeeded")
	}
	if err := l.StoreLogs([]*raft.Log{entry(6, 1), entry(8, 1)}); err == nil {
		t.Fatal("non-consecutive batch succeeded")
	}
	check(t, l, 1, 5, term(1))
}

// A suffix deleted across segments stays deleted, and what replaces it survives restarts.
func TestDeleteSuffixThenRestart(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, smallOpts)
	mustStore(t, l, entries(1, 150, 1))
	for i := uint64(151); i <= 300; i++ {
		mustStore(t, l, entries(i, i, 1))
	}
	if err := l.DeleteRange(120, 300); err != nil {
		t.Fatal(err)
	}
	check(t, l, 1, 119, term(1))
	l.Close()
	l = open(t, dir, smallOpts)
	check(t, l, 1, 119, term(1))
	mustStore(t, l, entries(120, 130, 2))
	l.Close()
	l = open(t, dir, smallOpts)
	defer l.Close()
	terms := func(i uint64) uint64 {
		if i >= 120 {
			return 2
		}
		return 1
	}
	check(t, l, 1, 130, terms)
}

// Deleting a segment's entries from its very first one leaves it empty; the chain still
// holds across the restart.
func TestDeleteSuffixAtSegmentStart(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, smallOpts)
	for i := uint64(1); i <= 100; i++ {
		mustStore(t, l, entries(i, i, 1))
	}
	segs := segFiles(t, dir)
	var base uint64
	fmt.Sscanf(filepath.Base(segs[len(segs)-1]), "%d.seg", &base)
	if err := l.DeleteRange(base, 100); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, dir, smallOpts)
	defer l.Close()
	check(t, l, 1, base-1, term(1))
	mustStore(t, l, entries(base, base+3, 3))
	check(t, l, 1, base+3, func(i uint64) uint64 {
		if i >= base {
			return 3
		}
		return 1
	})
}

func TestDeletePrefix(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, smallOpts)
	for i := uint64(1); i <= 200; i += 10 {
		mustStore(t, l, entries(i, i+9, 1))
	}
	before := len(segFiles(t, dir))
	if err := l.DeleteRange(1, 150); err != nil {
		t.Fatal(err)
	}
	check(t, l, 151, 200, term(1))
	if after := len(segFiles(t, dir)); after >= before {
		t.Fatalf("%d segments after a prefix delete, %d before", after, before)
	}
	mustStore(t, l, entries(201, 205, 1))
	l.Close()
	// After a restart the first index may be lower (the rest of the oldest segment), never
	// higher, and every entry is intact.
	l = open(t, dir, smallOpts)
	defer l.Close()
	f, _ := l.FirstIndex()
	if f > 151 || f < 1 {
		t.Fatalf("first index %d after restart", f)
	}
	check(t, l, f, 205, term(1))
}

// Deleting everything and appending after a gap (raft does both around an installed
// snapshot) starts afresh; older files never come back.
func TestDeleteAllAndGap(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, smallOpts)
	mustStore(t, l, entries(1, 100, 1))
	if err := l.DeleteRange(1, 100); err != nil {
		t.Fatal(err)
	}
	check(t, l, 0, 0, nil)
	mustStore(t, l, entries(500, 510, 2))
	check(t, l, 500, 510, term(2))
	mustStore(t, l, entries(600, 605, 3)) // gap: a new start
	check(t, l, 600, 605, term(3))
	l.Close()
	l = open(t, dir, smallOpts)
	defer l.Close()
	check(t, l, 600, 605, term(3))
}

// A segment that a delete-all unlinked but that reappeared (the unlink never reached the
// disk) is dropped on open: the fresh segment after it marks it stale.
func TestStaleSegmentsBeforeFreshStartDropped(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, smallOpts)
	mustStore(t, l, entries(1, 20, 1))
	old := segFiles(t, dir)[0]
	saved, _ := os.ReadFile(old)
	mustStore(t, l, entries(100, 110, 2)) // gap: deletes the old segment
	l.Close()
	if err := os.WriteFile(old, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, smallOpts)
	defer l.Close()
	check(t, l, 100, 110, term(2))
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("stale segment kept: %v", err)
	}
}

// Torn writes: whatever a crash leaves after the last synced record (part of a record, a
// record with a bad checksum, garbage) is cut off on open, and the log goes on from there.
func TestTornTailRecovery(t *testing.T) {
	cases := map[string]func(data []byte, lastOff int64) []byte{
		"truncated mid-record": func(d []byte, off int64) []byte { return d[:off+11] },
		"flipped byte":         func(d []byte, off int64) []byte { d[off+20] ^= 0xff; return d },
		"zeroed header":        func(d []byte, off int64) []byte { copy(d[off:off+8], make([]byte, 8)); return d },
		"garbage after":        func(d []byte, off int64) []byte { return append(d[:off], bytes.Repeat([]byte{0xab}, 300)...) },
	}
	for name, tear := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{SegmentSize: 1 << 20, NoPrealloc: true}
			l := open(t, dir, o)
			mustStore(t, l, entries(1, 10, 1))
			mustStore(t, l, entries(11, 11, 1))
			l.mu.RLock()
			off := l.segs[0].offs[10]
			l.mu.RUnlock()
			l.Close()
			seg := segFiles(t, dir)[0]
			data, _ := os.ReadFile(seg)
			if err := os.WriteFile(seg, tear(data, off), 0o600); err != nil {
				t.Fatal(err)
			}
			l = open(t, dir, o)
			check(t, l, 1, 10, term(1))
			mustStore(t, l, entries(11, 12, 2))
			l.Close()
			l = open(t, dir, o)
			defer l.Close()
			check(t, l, 1, 12, func(i uint64) uint64 {
				if i > 10 {
					return 2
				}
				return 1
			})
		})
	}
}

// A record left behind a rewritten one (here: the old record 3 put back right after a new
// record 2 of the same size) does not continue the new chain and is not read back.
func TestStaleRecordAfterRewriteIgnored(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: 1 << 20, NoPrealloc: true}
	l := open(t, dir, o)
	mustStore(t, l, entries(1, 3, 1))
	l.mu.RLock()
	off2, off3, end := l.segs[0].offs[1], l.segs[0].offs[2], l.segs[0].end
	l.mu.RUnlock()
	seg := segFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	old3 := append([]byte(nil), data[off3:end]...)
	if err := l.DeleteRange(2, 3); err != nil {
		t.Fatal(err)
	}
	e2 := entry(2, 1)
	e2.Term = 2 // same size, other term
	mustStore(t, l, []*raft.Log{e2})
	l.Close()
	data, _ = os.ReadFile(seg)
	if int64(len(data)) < off3 || !bytes.Equal(data[off2:off3][:8], data[off2:off2+8]) {
		t.Fatal("unexpected layout")
	}
	copy(data[off3:], old3)
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, o)
	defer l.Close()
	la, _ := l.LastIndex()
	if la != 2 {
		t.Fatalf("last index %d: a stale record was read back", la)
	}
	var got raft.Log
	if err := l.GetLog(2, &got); err != nil || got.Term != 2 {
		t.Fatalf("entry 2: %+v %v", got, err)
	}
}

// Damage in a sealed segment is not a torn tail: open refuses rather than lose synced,
// possibly acknowledged entries.
func TestCorruptSealedSegmentFailsOpen(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, smallOpts)
	for i := uint64(1); i <= 100; i += 5 {
		mustStore(t, l, entries(i, i+4, 1))
	}
	l.Close()
	seg := segFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	data[headerSize+40] ^= 1
	os.WriteFile(seg, data, 0o600)
	if _, err := Open(dir, smallOpts); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
}

// A crash while a segment was being created leaves a .tmp file, which open removes.
func TestUnpublishedSegmentRemoved(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, smallOpts)
	mustStore(t, l, entries(1, 5, 1))
	l.Close()
	tmp := filepath.Join(dir, segName(6)+".tmp")
	os.WriteFile(tmp, []byte("partial"), 0o600)
	l = open(t, dir, smallOpts)
	defer l.Close()
	check(t, l, 1, 5, term(1))
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatal("tmp file kept")
	}
}

func TestEmptyDataAndExtensions(t *testing.T) {
	l := open(t, t.TempDir(), smallOpts)
	defer l.Close()
	e := &raft.Log{Index: 1, Term: 1, Type: raft.LogNoop}
	x := &raft.Log{Index: 2, Term: 1, Type: raft.LogConfiguration, Data: []byte{1, 2}, Extensions: []byte("ext")}
	mustStore(t, l, []*raft.Log{e, x})
	var got raft.Log
	if err := l.GetLog(1, &got); err != nil {
		t.Fatal(err)
	}
	sameEntry(t, &got, e)
	if err := l.GetLog(2, &got); err != nil {
		t.Fatal(err)
	}
	sameEntry(t, &got, x)
}

func BenchmarkStoreLog1K(b *testing.B) {
	l := open(b, b.TempDir(), Options{})
	defer l.Close()
	data := bytes.Repeat([]byte{'v'}, 1100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.StoreLog(&raft.Log{Index: uint64(i + 1), Term: 1, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// Segments are made from the zeroed spare when it is ready (a file of exactly SegmentSize);
// a spare that a crash left with a header in it is reused; nothing it held is read as a
// record.
func TestSegmentsComeFromTheSpare(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: 16 << 10}
	spareReady := func(l *Log) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			l.spare.mu.Lock()
			ok := l.spare.ready
			l.spare.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no spare prepared")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	l := open(t, dir, o)
	spareReady(l)
	mustStore(t, l, entries(1, 1, 1))
	spareReady(l)
	for i := uint64(2); i <= 400; i += 4 {
		mustStore(t, l, entries(i, i+3, 1))
	}
	segs := segFiles(t, dir)
	if len(segs) < 2 {
		t.Fatalf("%d segments", len(segs))
	}
	for _, p := range segs {
		if st, _ := os.Stat(p); st.Size() < o.SegmentSize {
			t.Fatalf("%s has %d bytes: not made from the spare", p, st.Size())
		}
	}
	spareReady(l)
	l.Close()
	// A crash between writing a header into the spare and renaming it.
	sp := filepath.Join(dir, "spare")
	f, _ := os.OpenFile(sp, os.O_RDWR, 0)
	f.WriteAt(segHeader{base: 9999, flags: flagFresh}.encode(), 0)
	f.Close()
	l = open(t, dir, o)
	defer l.Close()
	check(t, l, 1, 401, term(1))
	if err := l.DeleteRange(1, 401); err != nil {
		t.Fatal(err)
	}
	mustStore(t, l, entries(500, 520, 2)) // a fresh start from the reused spare
	l.Close()
	l = open(t, dir, o)
	check(t, l, 500, 520, term(2))
}
