package nodeagent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// logOptions are the query parameters of containerLogs, as PodLogOptions.
type logOptions struct {
	follow     bool
	previous   bool
	timestamps bool
	tail       int64 // -1: all
	since      time.Time
	limitBytes int64 // 0: no limit
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{tail: -1}
	o.follow = q.Get("follow") == "true"
	o.previous = q.Get("previous") == "true"
	o.timestamps = q.Get("timestamps") == "true"
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return o, fmt.Errorf("bad tailLines %q", v)
		}
		o.tail = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("bad limitBytes %q", v)
		}
		o.limitBytes = n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("bad sinceSeconds %q", v)
		}
		o.since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, fmt.Errorf("bad sinceTime %q", v)
		}
		o.since = t
	}
	return o, nil
}

// errLogRequest is a request for logs that cannot be served as asked (400).
var errLogRequest = errors.New("bad log request")

// containerLogFile finds the CRI log of a pod's container: its current run,
// or the one before with previous.
func (a *Agent) containerLogFile(ctx context.Context, ns, podName, container string, previous bool) (string, *record, error) {
	pod := a.pods.findPod(ns, podName)
	if pod == nil {
		return "", nil, fmt.Errorf("%w: pod %s/%s not found on node %s", errLogRequest, ns, podName, a.cfg.NodeName)
	}
	if container == "" {
		if len(pod.Spec.Containers) != 1 {
			return "", nil, fmt.Errorf("%w: a container name must be specified for pod %s", errLogRequest, podName)
		}
		container = pod.Spec.Containers[0].Name
	}
	if findContainer(pod, container) == nil {
		return "", nil, fmt.Errorf("%w: container %s is not valid for pod %s", errLogRequest, container, podName)
	}
	list, err := a.cfg.Runtime.List(ctx)
	if err != nil {
		return "", nil, err
	}
	recs := groupRecords(pod.UID, list)
	r := recs.latest(container)
	if previous {
		r = recs.previous(container)
		if r == nil {
			return "", nil, fmt.Errorf("%w: previous terminated container %q in pod %q not found", errLogRequest, container, podName)
		}
	}
	if r == nil {
		return "", nil, fmt.Errorf("%w: container %q in pod %q is waiting to start", errLogRequest, container, podName)
	}
	return a.logs.logPath(pod.Namespace, pod.Name, pod.UID, container, r.Attempt), r, nil
}

// serveLogs writes a container's log as `kubectl logs` expects it.
func (a *Agent) serveLogs(w http.ResponseWriter, r *http.Request, ns, podName, container string) {
	opts, err := parseLogOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	path, rec, err := a.containerLogFile(r.Context(), ns, podName, container, opts.previous)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errLogRequest) {
			code = http.StatusBadRequest
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Transfer-Encoding", "chunked")
	out := &limitedWriter{w: w, left: opts.limitBytes}
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if err := a.writeLogs(r.Context(), out, flush, path, rec, opts); err != nil && !errors.Is(err, errLimit) && r.Context().Err() == nil {
		a.log.Warn("serving logs", "pod", ns+"/"+podName, "err", err)
	}
}

var errLimit = errors.New("limitBytes reached")

type limitedWriter struct {
	w    io.Writer
	left int64 // 0: unlimited
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.left == 0 {
		return l.w.Write(p)
	}
	if int64(len(p)) > l.left {
		n, _ := l.w.Write(p[:l.left])
		l.left = -1
		return n, errLimit
	}
	if l.left < 0 {
		return 0, errLimit
	}
	l.left -= int64(len(p))
	if l.left == 0 {
		l.left = -1
	}
	return l.w.Write(p)
}

// logEntry is one parsed CRI log line.
type logEntry struct {
	ts      time.Time
	partial bool
	text    []byte
}

func parseCRI(line []byte) (logEntry, bool) {
	f := bytes.SplitN(line, []byte{' '}, 4)
	if len(f) < 4 {
		return logEntry{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(f[0]))
	if err != nil {
		return logEntry{}, false
	}
	return logEntry{ts: ts, partial: string(f[2]) == "P", text: f[3]}, true
}

// logLine is a whole line of output, reassembled from partial entries.
type logLine struct {
	ts   time.Time
	text []byte
}

// lineAssembler joins P entries with the F entry that ends them.
type lineAssembler struct {
	pending *logLine
}

func (la *lineAssembler) add(e logEntry) (logLine, bool) {
	if la.pending == nil {
		la.pending = &logLine{ts: e.ts}
	}
	la.pending.text = append(la.pending.text, e.text...)
	if e.partial {
		return logLine{}, false
	}
	l := *la.pending
	la.pending = nil
	l.text = append(l.text, '\n')
	return l, true
}

func formatLine(l logLine, timestamps bool) []byte {
	if !timestamps {
		return l.text
	}
	return append([]byte(l.ts.UTC().Format(time.RFC3339Nano)+" "), l.text...)
}

// writeLogs writes the selected lines of the rotated files and the
// current one, then, with follow, what is appended until the container
// has exited and its output is all collected, or the client goes away.
func (a *Agent) writeLogs(ctx context.Context, w io.Writer, flush func(), path string, rec *record, o logOptions) error {
	files := append(rotatedFiles(path), path)
	var la lineAssembler
	var lines []logLine
	keep := func(l logLine) {
		if !o.since.IsZero() && l.ts.Before(o.since) {
			return
		}
		lines = append(lines, l)
		if o.tail >= 0 && int64(len(lines)) > o.tail {
			lines = lines[1:]
		}
	}
	var offset int64
	for i, f := range files {
		n, err := readEntries(f, 0, func(e logEntry) {
			if l, ok := la.add(e); ok {
				keep(l)
			}
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if i == len(files)-1 {
			offset = n
		}
	}
	for _, l := range lines {
		if _, err := w.Write(formatLine(l, o.timestamps)); err != nil {
			return err
		}
	}
	flush()
	if !o.follow {
		return nil
	}
	cur, err := os.Stat(path)
	idle := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logPoll):
		}
		if now, serr := os.Stat(path); serr == nil && err == nil && !os.SameFile(now, cur) {
			// Rotated: what was left of the old file is lost to this
			// follower only if it was written in the last poll; read on
			// from the new file's start.
			cur, offset = now, 0
		} else if err != nil && serr == nil {
			cur, err = now, nil
		}
		var werr error
		n, rerr := readEntries(path, offset, func(e logEntry) {
			if l, ok := la.add(e); ok && werr == nil {
				_, werr = w.Write(formatLine(l, o.timestamps))
			}
		})
		if werr != nil {
			return werr
		}
		if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return rerr
		}
		if n > offset {
			offset, idle = n, 0
			flush()
			continue
		}
		st, serr := a.cfg.Runtime.Status(ctx, rec.ID)
		if serr != nil || st.State != runtime.StateRunning {
			// Exited: one more poll lets the collector drain.
			if idle++; idle > 2*int(time.Second/logPoll) {
				return nil
			}
		}
	}
}

// readEntries reads complete CRI lines of path from offset and returns the
// offset after the last complete line.
func readEntries(path string, offset int64, fn func(logEntry)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return offset, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return offset, nil // a partial last line is read next time
		}
		offset += int64(len(line))
		if e, ok := parseCRI(bytes.TrimSuffix(line, []byte{'\n'})); ok {
			fn(e)
		}
	}
}

// findPod returns the pod by name from the cache or the static pods.
func (m *podManager) findPod(ns, name string) *corev1.Pod {
	if p := m.static.byName(ns, name); p != nil {
		return p
	}
	lp := m.lister.Load()
	if lp == nil {
		return nil
	}
	p, err := (*lp).Pods(ns).Get(name)
	if err != nil {
		return nil
	}
	return p
}
