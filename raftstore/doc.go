// Package raftstore is skiff's embedded, Raft-replicated key/value store: the etcd role.
//
// It knows nothing of Kubernetes. It stores keys and byte values under one global, monotonic
// revision; each key carries its create and modify revisions. Writes go through
// hashicorp/raft and are acknowledged only once a quorum has them in an fsynced log; any node
// accepts writes and forwards them to the leader. Reads are linearizable unless the caller
// asks for a stale local read. Watches replay a bounded in-memory history of changes;
// a watch or past list of a prefix within one key class (its first three '/'-separated
// segments, e.g. "/registry/pods/") is refused as compacted only once that class's own
// events were trimmed.
//
// The state machine (fsm.go) is deterministic: it reads no clock, disk or network; the time
// it needs comes from the leader inside each log entry.
package raftstore
