//go:build !skiffbroken

package raftstore

import "github.com/hashicorp/raft"

// earlyAck is the hook of the deliberately broken build (tag skiffbroken, never in a
// release): here, the correct path, a write is acknowledged only after Raft commits and
// applies it.
func earlyAck(*fsm, []byte, raft.ApplyFuture) (*TxnResult, bool) { return nil, false }
