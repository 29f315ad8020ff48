package raftlog

import (
	"math/rand/v2"
	"os"
	"testing"
)

// runModel drives a log with the operations that ops encodes, including restarts and torn
// tails, and checks it after each against a model: the entries that should be there, and
// the entries a prefix delete removed (which may come back after a restart, unchanged).
func runModel(t *testing.T, ops []byte) {
	dir := t.TempDir()
	o := Options{SegmentSize: 2 << 10}
	l := open(t, dir, o)
	defer func() { l.Close() }()
	terms := map[uint64]uint64{}  // the live entries' terms
	ghosts := map[uint64]uint64{} // entries deleted as a prefix
	var first, last uint64
	term := uint64(1)
	reopen := func() {
		l.Close()
		l = open(t, dir, o)
	}
	// verify checks the log against the model; after a restart it adopts a lower first
	// index made of prefix-deleted entries.
	verify := func(afterOpen bool) {
		t.Helper()
		f, _ := l.FirstIndex()
		la, _ := l.LastIndex()
		if la != last || (f != first && !(afterOpen && f < first)) {
			t.Fatalf("log %d-%d, model %d-%d", f, la, first, last)
		}
		for i := f; i < first && la != 0; i++ {
			gt, ok := ghosts[i]
			if !ok {
				t.Fatalf("entry %d is back but was never prefix-deleted", i)
			}
			terms[i] = gt
		}
		if afterOpen && la != 0 {
			first = f
		}
		check(t, l, first, last, func(i uint64) uint64 { return terms[i] })
	}
	for k := 0; k+1 < len(ops); k += 2 {
		op, arg := ops[k]%8, uint64(ops[k+1])
		switch op {
		case 0, 1: // append
			n := 1 + arg%9
			from := last + 1
			if last == 0 {
				from = 1 + arg
			}
			mustStore(t, l, entries(from, from+n-1, term))
			for i := from; i < from+n; i++ {
				terms[i] = term
			}
			if first == 0 {
				first = from
			}
			last = from + n - 1
		case 2: // new term
			term++
		case 3: // delete a suffix, as raft does on a conflict
			if last == 0 {
				continue
			}
			from := first + arg%(last-first+1)
			if err := l.DeleteRange(from, last); err != nil {
				t.Fatal(err)
			}
			for i := from; i <= last; i++ {
				delete(terms, i)
			}
			last = from - 1
			if last < first {
				first, last = 0, 0
				clear(ghosts)
			}
		case 4: // delete a prefix, as raft does after a snapshot
			if last == 0 {
				continue
			}
			to := first + arg%(last-first+1)
			if err := l.DeleteRange(first, to); err != nil {
				t.Fatal(err)
			}
			for i := first; i <= to; i++ {
				ghosts[i] = terms[i]
				delete(terms, i)
			}
			first = to + 1
			if first > last {
				first, last = 0, 0
				clear(ghosts)
			}
		case 5: // append after a gap, as raft does after installing a snapshot
			from := last + 2 + arg%50
			mustStore(t, l, entries(from, from+1, term))
			clear(terms)
			clear(ghosts)
			terms[from], terms[from+1] = term, term
			first, last = from, from+1
		case 6:
			reopen()
			verify(true)
		case 7: // a torn write: the newest batch only partly reached the disk
			from := last + 1
			if last == 0 {
				from = 1
			}
			n := 1 + arg%5
			mustStore(t, l, entries(from, from+n-1, term))
			l.mu.RLock()
			s := l.segs[len(l.segs)-1]
			i := int(from - s.base)
			if i < 0 {
				i = 0
			}
			cut := s.offs[i] + int64(arg*7)%(s.end-s.offs[i])
			path := s.path
			l.mu.RUnlock()
			l.Close()
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte{byte(arg), 0xee, 0x11, byte(arg >> 1)}, cut)
			f.Close()
			l = open(t, dir, o)
			la, _ := l.LastIndex()
			if la < from-1 || la > from+n-1 {
				t.Fatalf("after a torn batch %d-%d: last %d", from, from+n-1, la)
			}
			for i := from; i <= la; i++ {
				terms[i] = term
			}
			if la >= from && first == 0 {
				first = from
			}
			last = la
			if last == 0 {
				first = 0
			}
			verify(true)
			continue
		}
		verify(false)
	}
	reopen()
	verify(true)
}

func TestRandomOperationsAgainstModel(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 10
	}
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		ops := make([]byte, 300)
		for i := range ops {
			ops[i] = byte(r.UintN(256))
		}
		runModel(t, ops)
	}
}

func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 5, 0, 8, 6, 0, 3, 2, 6, 0})
	f.Add([]byte{0, 9, 0, 9, 0, 9, 4, 12, 6, 0, 0, 3, 6, 0})
	f.Add([]byte{0, 3, 7, 9, 0, 4, 7, 200, 6, 0})
	f.Add([]byte{0, 3, 5, 9, 6, 0, 3, 0, 0, 1, 6, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		runModel(t, ops)
	})
}
