//go:build skiffbroken

package raftstore

import "github.com/hashicorp/raft"

// earlyAck, in the deliberately broken build only, acknowledges a write as soon as the
// leader has proposed it, before any quorum has it: the result is guessed from the
// leader's current state. A leader killed right after loses acknowledged writes, and two
// racing compare-and-swaps can both "succeed". The chaos benchmark must catch this.
func earlyAck(f *fsm, entry []byte, _ raft.ApplyFuture) (*TxnResult, bool) {
	e, err := decodeEntry(entry)
	if err != nil {
		return nil, false
	}
	rev, _, _ := f.status()
	res := &TxnResult{Revision: rev + 1}
	for _, op := range e.ops {
		kv, _, gerr := f.get(op.Key)
		created := kv.CreateRevision
		if gerr != nil {
			created = rev + 1
		}
		res.Results = append(res.Results, OpResult{KV: KV{Key: op.Key, Value: op.Value, CreateRevision: created, ModRevision: rev + 1}})
	}
	return res, true
}
