package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// Config configures a Libcontainer runtime.
type Config struct {
	// Root holds everything the runtime keeps on disk:
	//
	//	<Root>/state/<id>/                    libcontainer's state
	//	<Root>/containers/<id>/meta.json      the spec and start time
	//	<Root>/containers/<id>/exit.json      how it ended, once it has
	//	<Root>/containers/<id>/{upper,work}/  the overlay's writable half
	//	<Root>/containers/<id>/rootfs/        the overlay mount
	//	<Root>/logs/<id>/{stdout,stderr}.log
	//
	// It must not be the directory of the running binary, nor contain it:
	// libcontainer then copies the whole binary on every start instead of
	// sealing it through a cheap overlay.
	Root string
	// CgroupRoot is the cgroup every container goes below; default "skiff".
	CgroupRoot string
	// Logger receives what the runtime cannot return as an error (from
	// supervision goroutines). Nil discards.
	Logger *slog.Logger
}

// Libcontainer runs real containers with runc's libcontainer. The binary
// using it must call MaybeInit first thing in main.
type Libcontainer struct {
	root, stateRoot, containersDir, logsDir string
	cgroupRoot                              string
	log                                     *slog.Logger

	// ctx bounds the supervision goroutines, tracked by wg. Cancelling it
	// (Close) stops supervising but leaves containers running, as an agent
	// restart does.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	containers map[string]*container
	creating   map[string]bool
}

var _ Runtime = (*Libcontainer)(nil)

// container is one supervised container.
type container struct {
	id     string
	spec   Spec
	dir    string
	logDir string
	lc     *libcontainer.Container // nil if it never got that far
	// cgroupPaths are the container's cgroup dirs, one per hierarchy,
	// kept because libcontainer forgets them once it has removed them.
	cgroupPaths []string
	done        chan struct{} // closed once the container has exited
	startAt     time.Time

	mu     sync.Mutex
	status Status
	pidfd  *os.File // the init process, until it has exited
}

type metaRecord struct {
	Spec      Spec      `json:"spec"`
	StartedAt time.Time `json:"startedAt,omitzero"`
}

type exitRecord struct {
	ExitCode   int       `json:"exitCode"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	Reason     string    `json:"reason"`
	FinishedAt time.Time `json:"finishedAt"`
}

// NewLibcontainer opens the runtime at cfg.Root and takes over the
// containers a previous instance left there: running ones are supervised
// again without being restarted; ones that ended meanwhile are reported as
// exited.
func NewLibcontainer(cfg Config) (*Libcontainer, error) {
	if cfg.Root == "" {
		return nil, errors.New("runtime: Config.Root is required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("runtime root: %w", err)
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "skiff"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Libcontainer{
		root:          root,
		stateRoot:     filepath.Join(root, "state"),
		containersDir: filepath.Join(root, "containers"),
		logsDir:       filepath.Join(root, "logs"),
		cgroupRoot:    cfg.CgroupRoot,
		log:           log,
		ctx:           ctx,
		cancel:        cancel,
		containers:    make(map[string]*container),
		creating:      make(map[string]bool),
	}
	if exe, err := os.Executable(); err == nil && within(root, filepath.Dir(exe)) {
		// Measured: 100 pods at once took 2-3 times as long, the agent spending 10 s of
		// CPU copying the binary instead of 1.5 s, with the binary in /tmp and the
		// agent's data below it.
		log.Warn("the runtime root is inside the binary's directory: every container start copies the whole binary; keep them apart",
			"root", root, "binary", exe)
	}
	for _, d := range []string{r.stateRoot, r.containersDir, r.logsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			cancel()
			return nil, fmt.Errorf("runtime root: %w", err)
		}
	}
	if err := r.recoverAll(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close stops supervising. Containers keep running; a new instance over the
// same root takes them over.
func (r *Libcontainer) Close() error {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		c.mu.Lock()
		if c.pidfd != nil {
			c.pidfd.Close()
			c.pidfd = nil
		}
		c.mu.Unlock()
	}
	return nil
}

func (r *Libcontainer) newContainer(spec Spec) *container {
	c := &container{
		id:     spec.ID,
		spec:   spec,
		dir:    filepath.Join(r.containersDir, spec.ID),
		logDir: filepath.Join(r.logsDir, spec.ID),
		done:   make(chan struct{}),
	}
	c.status = Status{
		ID:          spec.ID,
		Annotations: spec.Annotations,
		StdoutPath:  filepath.Join(c.logDir, "stdout.log"),
		StderrPath:  filepath.Join(c.logDir, "stderr.log"),
	}
	return c
}

// Start implements Runtime.
func (r *Libcontainer) Start(ctx context.Context, spec Spec) (_ Status, retErr error) {
	if err := validateSpec(spec); err != nil {
		return Status{}, err
	}
	r.mu.Lock()
	if r.containers[spec.ID] != nil || r.creating[spec.ID] {
		r.mu.Unlock()
		return Status{}, fmt.Errorf("%s: %w", spec.ID, ErrExists)
	}
	r.creating[spec.ID] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.creating, spec.ID)
		r.mu.Unlock()
	}()

	c := r.newContainer(spec)
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return Status{}, fmt.Errorf("%s: %w (left on disk)", spec.ID, ErrExists)
		}
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	var proc *libcontainer.Process
	defer func() {
		if retErr != nil {
			if proc != nil {
				_ = proc.Signal(unix.SIGKILL)
				_, _ = proc.Wait()
			}
			if err := r.cleanup(c); err != nil {
				r.log.Warn("cleanup after failed start", "container", spec.ID, "err", err)
			}
		}
	}()
	// The spec goes to disk before anything that would need undoing, so a
	// crash at any later point leaves enough to clean up after.
	if err := writeJSON(filepath.Join(c.dir, "meta.json"), metaRecord{Spec: spec}); err != nil {
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	rootfs := filepath.Join(c.dir, "rootfs")
	for _, d := range []string{filepath.Join(c.dir, "upper"), filepath.Join(c.dir, "work"), rootfs, c.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
		}
	}
	if err := mountOverlay(spec.Layers, filepath.Join(c.dir, "upper"), filepath.Join(c.dir, "work"), rootfs); err != nil {
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	cfg, err := libcontainerConfig(spec, rootfs, r.cgroupRoot)
	if err != nil {
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	lc, err := libcontainer.Create(r.stateRoot, spec.ID, cfg)
	if err != nil {
		return Status{}, fmt.Errorf("start %s: create: %w", spec.ID, err)
	}
	c.setLibcontainer(lc)

	// The log files are handed to the process as they are (no pipes
	// through us), so its output keeps flowing while the agent restarts.
	stdout, err := openLog(c.status.StdoutPath)
	if err != nil {
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	defer stdout.Close()
	stderr, err := openLog(c.status.StderrPath)
	if err != nil {
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	defer stderr.Close()
	cwd := spec.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	p := &libcontainer.Process{
		Args:   spec.Args,
		Env:    withDefaultPath(spec.Env),
		Cwd:    cwd,
		UID:    int(spec.UID),
		GID:    int(spec.GID),
		Stdout: stdout,
		Stderr: stderr,
		Init:   true,
	}
	for _, g := range spec.Security.SupplementalGroups {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	if err := lc.Run(p); err != nil {
		return Status{}, fmt.Errorf("start %s: run: %w", spec.ID, err)
	}
	proc = p
	pid, err := p.Pid()
	if err != nil {
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	pidfd, err := openPidfd(pid)
	if err != nil {
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	c.startAt = time.Now()
	if err := writeJSON(filepath.Join(c.dir, "meta.json"), metaRecord{Spec: spec, StartedAt: c.startAt}); err != nil {
		pidfd.Close()
		return Status{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	c.pidfd = pidfd
	c.status.State = StateRunning
	c.status.Pid = pid
	c.status.StartedAt = c.startAt

	r.mu.Lock()
	r.containers[spec.ID] = c
	r.mu.Unlock()
	r.supervise(c, pid)
	return c.snapshot(), nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func validateSpec(spec Spec) error {
	switch {
	case !validID(spec.ID):
		return fmt.Errorf("%w: bad id %q", ErrInvalid, spec.ID)
	case spec.CgroupParent != "" && !validID(spec.CgroupParent):
		return fmt.Errorf("%w: bad cgroup parent %q", ErrInvalid, spec.CgroupParent)
	case len(spec.Args) == 0:
		return fmt.Errorf("%w: %s: no command", ErrInvalid, spec.ID)
	case len(spec.Layers) == 0:
		return fmt.Errorf("%w: %s: no image layers", ErrInvalid, spec.ID)
	}
	return nil
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
}

func (c *container) setLibcontainer(lc *libcontainer.Container) {
	c.lc = lc
	if st, err := lc.State(); err == nil {
		for _, p := range st.CgroupPaths {
			c.cgroupPaths = append(c.cgroupPaths, p)
		}
	}
}

// supervise starts the goroutine that notices the container's exit.
func (r *Libcontainer) supervise(c *container, pid int) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		c.mu.Lock()
		pidfd := c.pidfd
		c.mu.Unlock()
		exited, err := waitExit(r.ctx, pidfd)
		if err != nil {
			r.log.Error("waiting for container exit", "container", c.id, "err", err)
		}
		if exited {
			r.finish(c, pid)
		}
	}()
}

// finish records how the container ended and wakes its waiters.
func (r *Libcontainer) finish(c *container, pid int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws, known := collectExit(pid, c.pidfd)
	rec := exitRecord{FinishedAt: time.Now(), ExitCode: exitCode(ws)}
	if st, err := c.lc.State(); err == nil {
		n, err := oomKills(st.CgroupPaths)
		if err != nil {
			r.log.Warn("reading OOM kill count", "container", c.id, "err", err)
		}
		rec.OOMKilled = n > 0
	}
	if !known {
		rec.ExitCode = 137
	}
	rec.Reason = exitReason(rec.ExitCode, rec.OOMKilled)
	if !known && !rec.OOMKilled {
		rec.Reason = ReasonUnknown
	}
	if err := writeJSON(filepath.Join(c.dir, "exit.json"), rec); err != nil {
		r.log.Error("recording container exit", "container", c.id, "err", err)
	}
	c.applyExit(rec)
	if c.pidfd != nil {
		c.pidfd.Close()
		c.pidfd = nil
	}
}

// applyExit sets the exited status and closes done. Called with c.mu held.
func (c *container) applyExit(rec exitRecord) {
	c.status.State = StateExited
	c.status.Pid = 0
	c.status.ExitCode = rec.ExitCode
	c.status.OOMKilled = rec.OOMKilled
	c.status.Reason = rec.Reason
	c.status.FinishedAt = rec.FinishedAt
	close(c.done)
}

func (c *container) snapshot() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (r *Libcontainer) get(id string) (*container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	if c == nil {
		return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return c, nil
}

// Status implements Runtime.
func (r *Libcontainer) Status(ctx context.Context, id string) (Status, error) {
	c, err := r.get(id)
	if err != nil {
		return Status{}, err
	}
	return c.snapshot(), nil
}

// List implements Runtime.
func (r *Libcontainer) List(ctx context.Context) ([]Status, error) {
	r.mu.Lock()
	out := make([]Status, 0, len(r.containers))
	for _, c := range r.containers {
		out = append(out, c.snapshot())
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Wait implements Runtime.
func (r *Libcontainer) Wait(ctx context.Context, id string) (Status, error) {
	c, err := r.get(id)
	if err != nil {
		return Status{}, err
	}
	select {
	case <-c.done:
		return c.snapshot(), nil
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
}

// Signal implements Runtime. It signals through the pidfd, so a signal can
// never hit a process that merely reuses the container's old pid.
func (r *Libcontainer) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	c, err := r.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status.State != StateRunning || c.pidfd == nil {
		return fmt.Errorf("%s: %w", id, ErrNotRunning)
	}
	if err := withFd(c.pidfd, func(fd int) error { return unix.PidfdSendSignal(fd, sig, nil, 0) }); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("%s: %w", id, ErrNotRunning)
		}
		return fmt.Errorf("signal %s: %w", id, err)
	}
	return nil
}

// Stop implements Runtime. A PID 1 without a SIGTERM handler never sees
// SIGTERM (the kernel drops it), so SIGKILL after grace is what stops it.
func (r *Libcontainer) Stop(ctx context.Context, id string, grace time.Duration) (Status, error) {
	c, err := r.get(id)
	if err != nil {
		return Status{}, err
	}
	if grace > 0 {
		if err := r.Signal(ctx, id, unix.SIGTERM); err != nil && !errors.Is(err, ErrNotRunning) {
			return Status{}, err
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-c.done:
			return c.snapshot(), nil
		case <-ctx.Done():
			return Status{}, ctx.Err()
		case <-timer.C:
		}
	}
	if err := r.Signal(ctx, id, unix.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
		return Status{}, err
	}
	return r.Wait(ctx, id)
}

// Exec implements Runtime.
func (r *Libcontainer) Exec(ctx context.Context, id string, spec ExecSpec) (int, error) {
	c, err := r.get(id)
	if err != nil {
		return -1, err
	}
	if len(spec.Args) == 0 {
		return -1, fmt.Errorf("%w: exec in %s: no command", ErrInvalid, id)
	}
	if c.snapshot().State != StateRunning {
		return -1, fmt.Errorf("exec in %s: %w", id, ErrNotRunning)
	}
	env := spec.Env
	if env == nil {
		env = c.spec.Env
	}
	cwd := spec.WorkingDir
	if cwd == "" {
		cwd = c.spec.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	stdout, stderr := spec.Stdout, spec.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	p := &libcontainer.Process{
		Args:   spec.Args,
		Env:    withDefaultPath(env),
		Cwd:    cwd,
		UID:    int(c.spec.UID),
		GID:    int(c.spec.GID),
		Stdin:  spec.Stdin,
		Stdout: stdout,
		Stderr: stderr,
	}
	for _, g := range c.spec.Security.SupplementalGroups {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	if err := c.lc.Run(p); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	type result struct {
		state *os.ProcessState
		err   error
	}
	waited := make(chan result, 1)
	go func() {
		st, err := p.Wait()
		waited <- result{st, err}
	}()
	var res result
	select {
	case res = <-waited:
	case <-ctx.Done():
		_ = p.Signal(unix.SIGKILL)
		<-waited
		return -1, ctx.Err()
	}
	if res.state == nil {
		return -1, fmt.Errorf("exec in %s: %w", id, res.err)
	}
	return exitCode(res.state.Sys().(syscall.WaitStatus)), nil
}

// Remove implements Runtime.
func (r *Libcontainer) Remove(ctx context.Context, id string) error {
	c, err := r.get(id)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
	default:
		if _, err := r.Stop(ctx, id, 0); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	if err := r.cleanup(c); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	r.mu.Lock()
	delete(r.containers, id)
	r.mu.Unlock()
	return nil
}

// cleanup deletes what a container left: its cgroup (and its parent's, if
// now empty), libcontainer state, rootfs mount, directories and logs. The
// container's processes must be gone.
func (r *Libcontainer) cleanup(c *container) error {
	var errs []error
	if c.lc != nil {
		if err := c.lc.Destroy(); err != nil {
			errs = append(errs, err)
		}
		if c.spec.CgroupParent != "" {
			removeEmptyParents(c.cgroupPaths)
		}
	} else if err := os.RemoveAll(filepath.Join(r.stateRoot, c.id)); err != nil {
		errs = append(errs, err)
	}
	if err := unmountRootfs(filepath.Join(c.dir, "rootfs")); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(c.logDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeEmptyParents removes the pod-level cgroups above a removed
// container's, in each hierarchy, once no other container is in them.
func removeEmptyParents(paths []string) {
	for _, p := range paths {
		// rmdir refuses a cgroup with children or tasks: exactly the
		// check wanted, so its error is the normal "still in use" case.
		_ = unix.Rmdir(filepath.Dir(p))
	}
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}
