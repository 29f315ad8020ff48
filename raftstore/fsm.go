package raftstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"github.com/hashicorp/raft"
)

// limits bound what one write may carry; the FSM checks them too so that an entry written
// by a misbehaving peer cannot grow the state past them.
type limits struct {
	maxKey   int
	maxValue int
}

// fsm is the replicated state machine. It holds the whole keyspace in memory in a B-tree
// ordered by key, the store revision, and the bounded event history that watches and
// past-revision lists read. All fields below mu are guarded by it.
type fsm struct {
	limits limits
	bounds historyBounds
	m      *metrics

	mu       sync.RWMutex
	tree     *btree.BTreeG[*KV]
	rev      int64  // store revision: advanced by every successful write
	applied  uint64 // raft index of the last entry delivered to the FSM
	bytes    int64  // sum of key and value sizes
	hist     history
	epoch    uint64        // bumped when a snapshot replaces the state
	notify   chan struct{} // closed and replaced after every change, to wake waiters
	headSeq  atomic.Uint64 // sequence number one past the newest event, for lag checks
	lastTime int64         // leader time of the newest entry

	// onApplied, when set, hears of each applied batch (the leader's transport then tells
	// followers of the commit). Set before raft starts.
	onApplied func()
}

type applyResult struct {
	res TxnResult
	err error
}

func kvLess(a, b *KV) bool { return a.Key < b.Key }

// historyBounds bound the watch history: events, bytes of the values it holds, and age.
type historyBounds struct {
	events int
	bytes  int64
	age    time.Duration
}

func newFSM(l limits, hb historyBounds, m *metrics) *fsm {
	return &fsm{
		limits: l,
		bounds: hb,
		m:      m,
		tree:   btree.NewG(32, kvLess),
		notify: make(chan struct{}),
	}
}

// Apply applies one entry; raft uses ApplyBatch, this is for completeness and tests.
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies a batch of committed entries under one lock and wakes waiters once.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	f.mu.Lock()
	for i, l := range logs {
		if l.Index > f.applied {
			f.applied = l.Index
		}
		if l.Type != raft.LogCommand {
			continue
		}
		out[i] = f.applyEntry(l.Data)
	}
	f.wakeLocked()
	f.mu.Unlock()
	if f.onApplied != nil {
		f.onApplied()
	}
	if f.m != nil {
		f.m.batchSize.Observe(float64(len(logs)))
	}
	return out
}

func (f *fsm) wakeLocked() {
	close(f.notify)
	f.notify = make(chan struct{})
}

// applyEntry decodes and applies one entry. A malformed entry is an error value, the same
// on every node, and changes nothing.
func (f *fsm) applyEntry(data []byte) *applyResult {
	e, err := decodeEntry(data)
	if err != nil {
		return &applyResult{err: err}
	}
	if e.kind&^flagIgnorable != entryTxn {
		if e.kind&flagIgnorable != 0 {
			return &applyResult{}
		}
		return &applyResult{err: fmt.Errorf("%w: unknown entry type %d", ErrCorruptEntry, e.kind)}
	}
	if e.time > f.lastTime {
		f.lastTime = e.time
	}
	res, err := f.applyTxn(e.ops, e.time)
	f.trimHistoryLocked()
	return &applyResult{res: res, err: err}
}

// applyTxn checks every op's condition first, then applies them all at one new revision.
func (f *fsm) applyTxn(ops []Op, at int64) (TxnResult, error) {
	if err := checkOps(ops, f.limits); err != nil {
		return TxnResult{}, err
	}
	// Keys written earlier in the same transaction count for later ops' conditions.
	pending := make(map[string]*KV, len(ops))
	current := func(key string) *KV {
		if kv, ok := pending[key]; ok {
			return kv
		}
		kv, _ := f.tree.Get(&KV{Key: key})
		return kv
	}
	rev := f.rev + 1
	for i, op := range ops {
		cur := current(op.Key)
		var err error
		switch {
		case op.Kind == OpCreate && cur != nil:
			err = ErrKeyExists
		case (op.Kind == OpUpdate || op.Kind == OpDelete) && cur == nil:
			err = ErrNotFound
		case op.IfModRevision != 0 && (cur == nil || cur.ModRevision != op.IfModRevision):
			err = ErrConflict
		}
		if err != nil {
			return TxnResult{}, &OpError{Index: i, Key: op.Key, Err: err}
		}
		if op.Kind == OpDelete {
			pending[op.Key] = nil
			continue
		}
		kv := &KV{Key: op.Key, Value: op.Value, CreateRevision: rev, ModRevision: rev}
		if cur != nil {
			kv.CreateRevision = cur.CreateRevision
		}
		pending[op.Key] = kv
	}

	res := TxnResult{Revision: rev, Results: make([]OpResult, len(ops))}
	for i, op := range ops {
		prev, _ := f.tree.Get(&KV{Key: op.Key})
		ev := Event{Revision: rev, Prev: prev, time: at}
		if op.Kind == OpDelete {
			if prev != nil { // a key deleted twice in one txn is gone after the first
				f.tree.Delete(prev)
				f.bytes -= int64(len(prev.Key) + len(prev.Value))
				ev.Type = EventDelete
				ev.KV = KV{Key: op.Key, CreateRevision: prev.CreateRevision, ModRevision: rev}
				res.Results[i] = OpResult{KV: *prev}
				f.hist.append(ev)
			}
			continue
		}
		kv := &KV{Key: op.Key, Value: op.Value, CreateRevision: rev, ModRevision: rev}
		if prev != nil {
			kv.CreateRevision = prev.CreateRevision
			f.bytes -= int64(len(prev.Key) + len(prev.Value))
		}
		f.tree.ReplaceOrInsert(kv)
		f.bytes += int64(len(kv.Key) + len(kv.Value))
		ev.Type = EventPut
		ev.KV = *kv
		res.Results[i] = OpResult{KV: *kv}
		f.hist.append(ev)
	}
	f.rev = rev
	f.headSeq.Store(f.hist.head())
	return res, nil
}

// checkOps validates a transaction's shape; both the proposer and the FSM run it.
func checkOps(ops []Op, l limits) error {
	if len(ops) == 0 {
		return fmt.Errorf("%w: empty transaction", ErrInvalid)
	}
	for i, op := range ops {
		var err error
		switch {
		case op.Kind < OpCreate || op.Kind > OpDelete:
			err = fmt.Errorf("%w: unknown op kind %d", ErrInvalid, op.Kind)
		case op.Key == "":
			err = fmt.Errorf("%w: empty key", ErrInvalid)
		case len(op.Key) > l.maxKey:
			err = fmt.Errorf("%w: key of %d bytes, limit %d", ErrTooLarge, len(op.Key), l.maxKey)
		case len(op.Value) > l.maxValue:
			err = fmt.Errorf("%w: value of %d bytes, limit %d", ErrTooLarge, len(op.Value), l.maxValue)
		case op.IfModRevision < 0:
			err = fmt.Errorf("%w: negative revision", ErrInvalid)
		}
		if err != nil {
			return &OpError{Index: i, Key: op.Key, Err: err}
		}
	}
	return nil
}

// trimHistoryLocked drops whole revisions past the count or byte bound or older than the
// age bound, measured against the newest entry's leader time so every node trims alike.
// The byte bound never drops the newest revision.
func (f *fsm) trimHistoryLocked() {
	b := f.bounds
	cutoff := f.lastTime - int64(b.age)
	for f.hist.len() > 0 {
		oldest := f.hist.at(f.hist.base)
		overBytes := b.bytes > 0 && f.hist.bytes > b.bytes && oldest.Revision != f.rev
		if f.hist.len() <= b.events && !overBytes && (b.age <= 0 || oldest.time >= cutoff) {
			return
		}
		f.hist.compact = f.hist.dropRevision()
	}
}

// get returns a key's current value.
func (f *fsm) get(key string) (KV, int64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	kv, ok := f.tree.Get(&KV{Key: key})
	if !ok {
		return KV{}, f.rev, ErrNotFound
	}
	return *kv, f.rev, nil
}

// status reads the counters that waiters and stats need.
func (f *fsm) status() (rev int64, applied uint64, compact int64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.rev, f.applied, f.hist.compact
}
