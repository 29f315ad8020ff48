package runtime

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Hollow is a Runtime that runs nothing: its containers are reported as
// running from Start until they are signalled, stopped or removed. It lets
// one machine simulate many nodes (as kubemark's hollow nodes do) while the
// rest of the agent behaves as on a real node.
//
// A hollow container acts like a process that exits 0 on SIGTERM or SIGINT,
// dies with 128+9 on SIGKILL, and ignores other signals. Exec succeeds
// without output.
type Hollow struct {
	mu         sync.Mutex
	containers map[string]*hollowContainer
}

var _ Runtime = (*Hollow)(nil)

type hollowContainer struct {
	status Status
	done   chan struct{}
}

// NewHollow returns an empty hollow runtime.
func NewHollow() *Hollow {
	return &Hollow{containers: make(map[string]*hollowContainer)}
}

// Start implements Runtime.
func (h *Hollow) Start(ctx context.Context, spec Spec) (Status, error) {
	if !validID(spec.ID) || len(spec.Args) == 0 {
		return Status{}, fmt.Errorf("%w: %q", ErrInvalid, spec.ID)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.containers[spec.ID] != nil {
		return Status{}, fmt.Errorf("%s: %w", spec.ID, ErrExists)
	}
	c := &hollowContainer{
		status: Status{ID: spec.ID, State: StateRunning, StartedAt: time.Now(), Annotations: spec.Annotations},
		done:   make(chan struct{}),
	}
	h.containers[spec.ID] = c
	return c.status, nil
}

func (h *Hollow) get(id string) (*hollowContainer, error) {
	c := h.containers[id]
	if c == nil {
		return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return c, nil
}

// Status implements Runtime.
func (h *Hollow) Status(ctx context.Context, id string) (Status, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, err := h.get(id)
	if err != nil {
		return Status{}, err
	}
	return c.status, nil
}

// Wait implements Runtime.
func (h *Hollow) Wait(ctx context.Context, id string) (Status, error) {
	h.mu.Lock()
	c, err := h.get(id)
	h.mu.Unlock()
	if err != nil {
		return Status{}, err
	}
	select {
	case <-c.done:
		return h.Status(ctx, id)
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
}

// Signal implements Runtime.
func (h *Hollow) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, err := h.get(id)
	if err != nil {
		return err
	}
	if c.status.State != StateRunning {
		return fmt.Errorf("%s: %w", id, ErrNotRunning)
	}
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		c.exit(0)
	case syscall.SIGKILL:
		c.exit(128 + int(syscall.SIGKILL))
	}
	return nil
}

// exit marks c exited. Called with Hollow.mu held.
func (c *hollowContainer) exit(code int) {
	c.status.State = StateExited
	c.status.ExitCode = code
	c.status.Reason = exitReason(code, false)
	c.status.FinishedAt = time.Now()
	close(c.done)
}

// Stop implements Runtime; hollow containers honour SIGTERM at once.
func (h *Hollow) Stop(ctx context.Context, id string, grace time.Duration) (Status, error) {
	sig := syscall.SIGTERM
	if grace <= 0 {
		sig = syscall.SIGKILL
	}
	if err := h.Signal(ctx, id, sig); err != nil && !isNotRunning(err) {
		return Status{}, err
	}
	return h.Status(ctx, id)
}

// Exec implements Runtime.
func (h *Hollow) Exec(ctx context.Context, id string, spec ExecSpec) (int, error) {
	st, err := h.Status(ctx, id)
	if err != nil {
		return -1, err
	}
	if st.State != StateRunning {
		return -1, fmt.Errorf("exec in %s: %w", id, ErrNotRunning)
	}
	return 0, nil
}

// Remove implements Runtime.
func (h *Hollow) Remove(ctx context.Context, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, err := h.get(id)
	if err != nil {
		return err
	}
	if c.status.State == StateRunning {
		c.exit(128 + int(syscall.SIGKILL))
	}
	delete(h.containers, id)
	return nil
}

// List implements Runtime.
func (h *Hollow) List(ctx context.Context) ([]Status, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Status, 0, len(h.containers))
	for _, c := range h.containers {
		out = append(out, c.status)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
