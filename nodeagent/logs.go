package nodeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// Container output goes, from the process, straight into the runtime's raw
// stdout and stderr files, so that it keeps flowing while the agent is down.
// The collector tails those files and appends each chunk, stamped with the
// time it was read, to the container's log in the CRI format the kubelet
// uses (<RFC3339Nano> <stream> <F|P> <text>), rotating it by size and
// count. Read offsets are saved beside the log, so a restarted agent
// carries on where it stopped; consumed bytes are punched out of the raw
// files, which therefore never take more disk than what is unread.
//
// Timestamps are when the agent read a chunk: within logCoalesce of the
// write while the agent runs, later for output written while it was down.
//
// A tailer sleeps until its container writes (inotify on the raw files'
// directory) or exits; it polled every 200 ms before, which cost an idle
// agent 500 wakeups a second with 100 containers.

// logPoll is how often a tailer reads when inotify is not available, and how
// often a follower of a log (kubectl logs -f) looks for more.
const logPoll = 200 * time.Millisecond

// logCoalesce: after a write wakes a tailer, it waits this long for more, so a
// chatty container costs a few reads a second, not one per write.
const logCoalesce = 50 * time.Millisecond

type logCollector struct {
	a *Agent

	mu      sync.Mutex
	ctx     context.Context
	tailers map[string]*tailer
	done    map[string]*tailer // drained after exit
	wg      sync.WaitGroup
}

type tailer struct {
	id      string
	dir     string // the container's log dir
	attempt int
	raw     [2]string // stdout, stderr
	cancel  context.CancelFunc
	stopped chan struct{}
}

type logPos struct {
	Stdout int64 `json:"stdout"`
	Stderr int64 `json:"stderr"`
}

var streamNames = [2]string{"stdout", "stderr"}

func newLogCollector(a *Agent) *logCollector {
	return &logCollector{a: a, tailers: map[string]*tailer{}, done: map[string]*tailer{}}
}

// start lets collect start tailers, bound to ctx; stop waits for them.
func (l *logCollector) start(ctx context.Context) {
	l.mu.Lock()
	l.ctx = ctx
	l.mu.Unlock()
}

func (l *logCollector) wait() { l.wg.Wait() }

// logPath is the CRI log of a container's attempt.
func (l *logCollector) logPath(ns, name string, uid types.UID, container string, attempt int) string {
	return filepath.Join(containerLogDir(l.a.cfg.DataDir, ns, name, uid, container), strconv.Itoa(attempt)+".log")
}

// collect makes sure the container's output is being collected.
func (l *logCollector) collect(ns, name string, uid types.UID, r record) {
	if r.Status.StdoutPath == "" {
		return // the hollow runtime has no output
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil || l.ctx.Err() != nil || l.tailers[r.ID] != nil || l.done[r.ID] != nil {
		return
	}
	ctx, cancel := context.WithCancel(l.ctx)
	t := &tailer{
		id:      r.ID,
		dir:     containerLogDir(l.a.cfg.DataDir, ns, name, uid, r.Name),
		attempt: r.Attempt,
		raw:     [2]string{r.Status.StdoutPath, r.Status.StderrPath},
		cancel:  cancel,
		stopped: make(chan struct{}),
	}
	l.tailers[r.ID] = t
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(t.stopped)
		err := l.tail(ctx, t)
		l.mu.Lock()
		if l.tailers[t.id] == t {
			delete(l.tailers, t.id)
			if err == nil {
				l.done[t.id] = t
			}
		}
		l.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			l.a.log.Warn("collecting container logs", "container", t.id, "err", err)
		}
	}()
}

// forget stops collecting a removed container's output and deletes its
// log files.
func (l *logCollector) forget(id string) {
	l.mu.Lock()
	t := l.tailers[id]
	if t == nil {
		t = l.done[id]
	}
	delete(l.tailers, id)
	delete(l.done, id)
	l.mu.Unlock()
	if t == nil {
		return
	}
	t.cancel()
	<-t.stopped
	matches, _ := filepath.Glob(filepath.Join(t.dir, strconv.Itoa(t.attempt)+".log*"))
	for _, m := range matches {
		os.Remove(m)
	}
}

// tail copies the raw output into the CRI log until the container has
// exited and everything is copied (nil), or ctx ends.
func (l *logCollector) tail(ctx context.Context, t *tailer) error {
	if err := os.MkdirAll(t.dir, 0o750); err != nil {
		return err
	}
	path := filepath.Join(t.dir, strconv.Itoa(t.attempt)+".log")
	posPath := path + ".pos"
	var pos logPos
	if data, err := os.ReadFile(posPath); err == nil {
		_ = json.Unmarshal(data, &pos)
	}
	offsets := [2]*int64{&pos.Stdout, &pos.Stderr}
	var raws [2]*os.File
	defer func() {
		for _, f := range raws {
			if f != nil {
				f.Close()
			}
		}
	}()
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer func() { out.Close() }()
	wake, stopWake := l.wakeups(ctx, t)
	defer stopWake()
	buf := make([]byte, 64<<10)
	for {
		exited := false
		if st, err := l.a.cfg.Runtime.Status(ctx, t.id); err != nil || st.State != runtime.StateRunning {
			exited = true // read what is left, then stop
		}
		wrote := false
		for i := range raws {
			if raws[i] == nil {
				// Read-write: punching holes needs a writable descriptor.
				f, err := os.OpenFile(t.raw[i], os.O_RDWR, 0)
				if err != nil {
					if errors.Is(err, os.ErrNotExist) {
						continue
					}
					return err
				}
				raws[i] = f
			}
			for {
				n, err := raws[i].ReadAt(buf, *offsets[i])
				if n > 0 {
					if err := writeCRI(out, time.Now(), streamNames[i], buf[:n]); err != nil {
						return err
					}
					*offsets[i] += int64(n)
					wrote = true
				}
				if err == io.EOF || n == 0 {
					break
				}
				if err != nil {
					return err
				}
			}
		}
		if wrote {
			data, _ := json.Marshal(pos)
			if err := writeFileAtomic(posPath, data); err != nil {
				return err
			}
			for i, f := range raws {
				if f != nil {
					punch(f, *offsets[i])
				}
			}
			if fi, err := out.Stat(); err == nil && fi.Size() >= l.a.cfg.LogMaxBytes {
				out.Close()
				if err := rotate(path, l.a.cfg.LogMaxFiles); err != nil {
					return err
				}
				if out, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640); err != nil {
					return err
				}
			}
		}
		if exited {
			if !wrote {
				return nil
			}
			continue // drain what is left; no wakeup will come for it
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(logCoalesce):
		}
	}
}

// wakeups returns a channel that receives when the tailer has something to do: its
// container wrote to a raw log (or, without inotify, every logPoll) or exited. The
// returned func stops the goroutines behind it.
func (l *logCollector) wakeups(ctx context.Context, t *tailer) (<-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(ctx)
	c := make(chan struct{}, 1)
	signal := func() {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		// Exited, or unknown to the runtime: either way the next pass sees it.
		_, _ = l.a.cfg.Runtime.Wait(ctx, t.id)
		if ctx.Err() == nil {
			signal()
		}
	})
	f, err := watchDir(filepath.Dir(t.raw[0]))
	if err != nil {
		l.a.log.Debug("container logs: polling", "container", t.id, "err", err)
		wg.Go(func() {
			tick := time.NewTicker(logPoll)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					signal()
				}
			}
		})
		return c, func() { cancel(); wg.Wait() }
	}
	wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return // closed below
			}
			signal()
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		f.Close() // ends the Read above: the descriptor is in Go's poller
	})
	return c, func() { cancel(); wg.Wait() }
}

// watchDir returns an inotify descriptor that reads an event whenever a file in dir is
// written or created. It is non-blocking, so Go's poller waits on it, and closing it
// ends a pending Read.
func watchDir(dir string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), "inotify:"+dir), nil
}

// writeCRI writes chunk as CRI log lines: complete lines tagged F, a
// trailing partial line tagged P (the next entry continues it).
func writeCRI(w io.Writer, ts time.Time, stream string, chunk []byte) error {
	var b bytes.Buffer
	stamp := ts.UTC().Format(time.RFC3339Nano)
	for len(chunk) > 0 {
		line, rest, full := bytes.Cut(chunk, []byte{'\n'})
		tag := "F"
		if !full {
			tag = "P"
		}
		fmt.Fprintf(&b, "%s %s %s ", stamp, stream, tag)
		b.Write(line)
		b.WriteByte('\n')
		chunk = rest
	}
	_, err := w.Write(b.Bytes())
	return err
}

// punch frees the disk blocks of a raw log's consumed prefix while keeping
// its size and offsets, so the writing process never notices.
func punch(f *os.File, upTo int64) {
	const block = 4096
	if n := upTo / block * block; n > 0 {
		// Best effort: a file system without hole punching keeps the bytes.
		_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, n)
	}
}

// rotate renames path to path.<timestamp> and keeps at most maxFiles-1
// rotated files.
func rotate(path string, maxFiles int) error {
	if err := os.Rename(path, path+"."+time.Now().UTC().Format("20060102-150405.000000000")); err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	old := rotatedFiles(path)
	for len(old) > maxFiles-1 && len(old) > 0 {
		os.Remove(old[0])
		old = old[1:]
	}
	return nil
}

// rotatedFiles lists path's rotated files, oldest first.
func rotatedFiles(path string) []string {
	matches, _ := filepath.Glob(path + ".*")
	var out []string
	for _, m := range matches {
		if !strings.HasSuffix(m, ".pos") && !strings.HasSuffix(m, ".tmp") {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
