package raftstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. They are the same values at every layer: a write forwarded from a
// follower comes back with the leader's sentinel, so callers test with errors.Is.
var (
	ErrNotFound      = errors.New("raftstore: key not found")
	ErrKeyExists     = errors.New("raftstore: key already exists")
	ErrConflict      = errors.New("raftstore: revision mismatch")
	ErrCompacted     = errors.New("raftstore: revision compacted")
	ErrNotLeader     = errors.New("raftstore: not the leader")
	ErrNoLeader      = errors.New("raftstore: no leader")
	ErrInvalid       = errors.New("raftstore: invalid request")
	ErrTooLarge      = errors.New("raftstore: request too large")
	ErrWatcherSlow   = errors.New("raftstore: watcher fell too far behind")
	ErrClosed        = errors.New("raftstore: store closed")
	ErrIndeterminate = errors.New("raftstore: write outcome unknown")
	ErrCorruptEntry  = errors.New("raftstore: corrupt log entry")
)

// CompactedError is returned when a read or watch asks for a revision older than the
// bounded history. Oldest is the oldest revision a watch or list may start from.
type CompactedError struct {
	Requested int64
	Oldest    int64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("raftstore: revision %d compacted, oldest available is %d", e.Requested, e.Oldest)
}

func (e *CompactedError) Unwrap() error { return ErrCompacted }

// OpError says which operation of a transaction failed, and why.
type OpError struct {
	Index int    // position of the op in the transaction
	Key   string // its key
	Err   error  // a sentinel: ErrNotFound, ErrKeyExists, ErrConflict, ErrInvalid, ErrTooLarge
}

func (e *OpError) Error() string {
	return fmt.Sprintf("raftstore: op %d on %q: %v", e.Index, e.Key, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// errorCode and codeError carry sentinels across the forwarding connection. Codes are
// only ever appended, so servers of two versions still agree on the old ones.
var errorCodes = []error{
	nil, ErrNotFound, ErrKeyExists, ErrConflict, ErrCompacted, ErrNotLeader, ErrNoLeader,
	ErrInvalid, ErrTooLarge, ErrWatcherSlow, ErrClosed, ErrIndeterminate, ErrCorruptEntry,
}

func errorCode(err error) uint8 {
	for i := 1; i < len(errorCodes); i++ {
		if errors.Is(err, errorCodes[i]) {
			return uint8(i)
		}
	}
	return 255
}

func codeError(code uint8, msg string) error {
	if code == 0 {
		return nil
	}
	if int(code) < len(errorCodes) {
		return errorCodes[code]
	}
	return errors.New(msg)
}
