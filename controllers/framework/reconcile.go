package framework

import (
	"context"
	"errors"
	"time"
)

// Reconciler brings the object named by key ("namespace/name" or "name") to its desired
// state. It reads the current state itself: the key names an object, not an event, so a
// reconcile after a crash or a leader change finishes what an earlier one started.
type Reconciler interface {
	Reconcile(ctx context.Context, key string) (Result, error)
}

// ReconcileFunc adapts a function to Reconciler.
type ReconcileFunc func(ctx context.Context, key string) (Result, error)

// Reconcile calls f.
func (f ReconcileFunc) Reconcile(ctx context.Context, key string) (Result, error) { return f(ctx, key) }

// Result says when to look at the key again without an error.
type Result struct {
	// RequeueAfter, when positive, reconciles the key again after this long.
	RequeueAfter time.Duration
}

// errTerminal marks an error that retrying cannot fix.
type terminalError struct{ err error }

func (t terminalError) Error() string { return "terminal: " + t.err.Error() }
func (t terminalError) Unwrap() error { return t.err }

// Terminal wraps err so that the queue logs it and drops the key instead of retrying with
// back-off; the next change to the object brings it back.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return terminalError{err: err}
}

// IsTerminal reports whether err was wrapped by Terminal.
func IsTerminal(err error) bool {
	var t terminalError
	return errors.As(err, &t)
}
