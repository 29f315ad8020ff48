package raftstore

import (
	"errors"
	"fmt"
	"testing"
)

// TestEverySentinelCrossesTheForwardingConnection: a follower returns the leader's sentinel,
// whatever it is, so that callers (the apiserver's error mapping) test with errors.Is at every
// layer. A sentinel without a code came back as a bare string (seen: "write outcome unknown"
// from the leader answered as 500 Internal error instead of 504).
func TestEverySentinelCrossesTheForwardingConnection(t *testing.T) {
	for _, want := range []error{ErrNotFound, ErrKeyExists, ErrConflict, ErrCompacted, ErrNotLeader, ErrNoLeader,
		ErrInvalid, ErrTooLarge, ErrWatcherSlow, ErrClosed, ErrIndeterminate, ErrCorruptEntry} {
		wrapped := fmt.Errorf("%w: some detail", want)
		if got := codeError(errorCode(wrapped), wrapped.Error()); !errors.Is(got, want) {
			t.Errorf("%v crossed as %v", want, got)
		}
	}
	if got := codeError(errorCode(errors.New("other")), "other"); got == nil || got.Error() != "other" {
		t.Errorf("a non-sentinel error crossed as %v", got)
	}
}
