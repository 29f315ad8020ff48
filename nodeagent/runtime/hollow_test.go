package runtime_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

func TestHollowRunsUntilStopped(t *testing.T) {
	ctx := context.Background()
	h := runtime.NewHollow()
	spec := runtime.Spec{ID: "c1", Args: []string{"/pause"}}
	st, err := h.Start(ctx, spec)
	if err != nil || st.State != runtime.StateRunning {
		t.Fatalf("start: %+v, %v", st, err)
	}
	if _, err := h.Start(ctx, spec); !errors.Is(err, runtime.ErrExists) {
		t.Fatalf("duplicate start: %v", err)
	}

	// It does not exit by itself.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := h.Wait(short, "c1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a running hollow container: %v", err)
	}
	if code, err := h.Exec(ctx, "c1", runtime.ExecSpec{Args: []string{"true"}}); code != 0 || err != nil {
		t.Fatalf("exec: %d, %v", code, err)
	}

	waited := make(chan runtime.Status, 1)
	go func() {
		st, _ := h.Wait(ctx, "c1")
		waited <- st
	}()
	st, err = h.Stop(ctx, "c1", time.Second)
	if err != nil || st.State != runtime.StateExited || st.ExitCode != 0 {
		t.Fatalf("stop: %+v, %v", st, err)
	}
	if w := <-waited; w.State != runtime.StateExited {
		t.Fatalf("waiter saw %+v", w)
	}
	if err := h.Signal(ctx, "c1", syscall.SIGTERM); !errors.Is(err, runtime.ErrNotRunning) {
		t.Fatalf("signal after exit: %v", err)
	}
	if err := h.Remove(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := h.List(ctx); len(list) != 0 {
		t.Fatalf("list after remove: %+v", list)
	}
}

func TestHollowSIGKILLAndRemove(t *testing.T) {
	ctx := context.Background()
	h := runtime.NewHollow()
	for _, id := range []string{"b", "a"} {
		if _, err := h.Start(ctx, runtime.Spec{ID: id, Args: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	if list, _ := h.List(ctx); len(list) != 2 || list[0].ID != "a" {
		t.Fatalf("list: %+v", list)
	}
	if err := h.Signal(ctx, "a", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.Status(ctx, "a"); st.ExitCode != 137 || st.Reason != runtime.ReasonError {
		t.Fatalf("after SIGKILL: %+v", st)
	}
	if err := h.Remove(ctx, "b"); err != nil { // running: removed anyway
		t.Fatal(err)
	}
	if _, err := h.Status(ctx, "b"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("status of removed: %v", err)
	}
}
