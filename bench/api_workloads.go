package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiClients are client-go clientsets speaking protobuf, client i on endpoint i mod n
// (clientsets with one config share its connection, as a real program's do).
func apiClients(cfgs []*rest.Config, n int) ([]kubernetes.Interface, error) {
	per := make([]kubernetes.Interface, len(cfgs))
	for i, c := range cfgs {
		c = rest.CopyConfig(c)
		c.ContentType = "application/vnd.kubernetes.protobuf"
		c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		c.QPS, c.Burst = 1e6, 1e6 // measure the server, not client-side throttling
		c.Timeout = 60 * time.Second
		cs, err := kubernetes.NewForConfig(c)
		if err != nil {
			return nil, err
		}
		per[i] = cs
	}
	out := make([]kubernetes.Interface, n)
	for i := range out {
		out[i] = per[i%len(per)]
	}
	return out, nil
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return err
	}
	return nil
}

// timed collects per-operation latencies from many goroutines.
type timed struct {
	mu   sync.Mutex
	lat  []time.Duration
	errs int
}

func (t *timed) add(lat []time.Duration, errs int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lat = append(t.lat, lat...)
	t.errs += errs
}

// runPhase runs op on every client until the deadline (or op says it is done) and
// summarizes the latencies of the successful calls.
func runPhase(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, client, i int) (done bool, err error)) Summary {
	var t timed
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				done, err := op(ctx, c, i)
				if done {
					break
				}
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			t.add(lat, errs)
		}()
	}
	wg.Wait()
	return Summarize(t.lat, t.errs, time.Since(start))
}

// runConfigMaps measures create, get, update and delete of 1 KiB ConfigMaps, each for d,
// with the given number of clients; each client works on its own objects.
func runConfigMaps(ctx context.Context, cs []kubernetes.Interface, ns string, d time.Duration) map[string]Summary {
	n := len(cs)
	objs := make([][]*corev1.ConfigMap, n)
	payload := strings.Repeat("x", 1024)
	out := map[string]Summary{}
	out["cm-create"] = runPhase(ctx, n, d, func(ctx context.Context, c, i int) (bool, error) {
		cm, err := cs[c].CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d-%d-%d", n, c, i)}, Data: map[string]string{"v": payload}}, metav1.CreateOptions{})
		if err == nil {
			objs[c] = append(objs[c], cm)
		}
		return false, err
	})
	out["cm-get"] = runPhase(ctx, n, d, func(ctx context.Context, c, i int) (bool, error) {
		if len(objs[c]) == 0 {
			return true, nil
		}
		_, err := cs[c].CoreV1().ConfigMaps(ns).Get(ctx, objs[c][i%len(objs[c])].Name, metav1.GetOptions{})
		return false, err
	})
	out["cm-update"] = runPhase(ctx, n, d, func(ctx context.Context, c, i int) (bool, error) {
		if len(objs[c]) == 0 {
			return true, nil
		}
		k := i % len(objs[c])
		cm := objs[c][k].DeepCopy()
		cm.Data["n"] = strconv.Itoa(i)
		cm, err := cs[c].CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		if err == nil {
			objs[c][k] = cm
		}
		return false, err
	})
	out["cm-delete"] = runPhase(ctx, n, d, func(ctx context.Context, c, i int) (bool, error) {
		if i >= len(objs[c]) {
			return true, nil
		}
		return false, cs[c].CoreV1().ConfigMaps(ns).Delete(ctx, objs[c][i].Name, metav1.DeleteOptions{})
	})
	return out
}

// createPods fills ns with n small pods, with 32 writers. Their scheduler name is one no
// scheduler serves, so they stay Pending and untouched while they are listed.
func createPods(ctx context.Context, cs []kubernetes.Interface, ns string, n int, progress io.Writer) error {
	listed := func(i int) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), Labels: map[string]string{"app": "bench", "shard": strconv.Itoa(i % 10)}},
			Spec: corev1.PodSpec{SchedulerName: "skiff-bench-none", Containers: []corev1.Container{{Name: "app", Image: "registry.local/bench:1"}}}}
	}
	return createPodsWith(ctx, cs, ns, n, 32, listed, func(f string, a ...any) { fmt.Fprintf(progress, "bench api:   "+f+"\n", a...) })
}

// createPodsWith creates podFor(i) for i in [0, n) in ns with the given writers, each call tried up
// to 5 times (an existing pod counts as created), saying how far it is every 2,000 pods.
func createPodsWith(ctx context.Context, cs []kubernetes.Interface, ns string, n, writers int, podFor func(i int) *corev1.Pod, say func(string, ...any)) error {
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	next := make(chan int)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				pod := podFor(i)
				var err error
				for try := 0; try < 5; try++ {
					if _, err = cs[w%len(cs)].CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err == nil || strings.Contains(err.Error(), "already exists") {
						err = nil
						break
					}
				}
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if i > 0 && i%2000 == 0 {
			say("%d pods created (%.0f/s)", i, float64(i)/time.Since(start).Seconds())
		}
		select {
		case next <- i:
		case err := <-errc:
			close(next)
			wg.Wait()
			return fmt.Errorf("creating pods: %w", err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		return fmt.Errorf("creating pods: %w", err)
	default:
	}
	return ctx.Err()
}

// runLists lists the namespace's pods repeats times in one way: "" (consistent), "0", or
// paginated by 500; latency is per full list, and every list must hold want pods.
func runLists(ctx context.Context, cs kubernetes.Interface, ns, mode string, want, repeats int) Summary {
	var lat []time.Duration
	errs := 0
	start := time.Now()
	for r := 0; r < repeats && ctx.Err() == nil; r++ {
		t0 := time.Now()
		got, err := listOnce(ctx, cs, ns, mode)
		if err != nil || got != want {
			errs++
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	return Summarize(lat, errs, time.Since(start))
}

func listOnce(ctx context.Context, cs kubernetes.Interface, ns, mode string) (int, error) {
	switch mode {
	case "paged":
		n, cont := 0, ""
		for {
			l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
			if err != nil {
				return n, err
			}
			n += len(l.Items)
			if cont = l.Continue; cont == "" {
				return n, nil
			}
		}
	default:
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: mode})
		if err != nil {
			return 0, err
		}
		return len(l.Items), nil
	}
}

// sentAnnotation carries a write's start time, so that each watcher can compute its delay.
const sentAnnotation = "bench.skiff.dev/sent-unix-nano"

// runWatchFanout opens watchers on one namespace (spread over cs), writes rate
// ConfigMaps per second for d, and measures each event's delay from the start of its
// write to its arrival at each watcher. Events that never arrive count as errors. The
// writes are paced, not closed-loop: a write starts on its tick whether or not the ones
// before it have returned (up to a second's worth in flight), so that a server slowed by
// the fan-out still gets its 100 writes a second; written says how many a second started.
// run numbers a step's runs, whose ConfigMaps must have names of their own.
func runWatchFanout(ctx context.Context, cs []kubernetes.Interface, writer kubernetes.Interface, ns string, run, watchers, rate int, d time.Duration) (s Summary, written float64, err error) {
	list, err := writer.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return Summary{}, 0, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws := make([]watch.Interface, 0, watchers)
	defer func() {
		for _, w := range ws {
			w.Stop()
		}
	}()
	for i := 0; i < watchers; i++ {
		w, err := cs[i%len(cs)].CoreV1().ConfigMaps(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			return Summary{}, 0, fmt.Errorf("watcher %d: %w", i, err)
		}
		ws = append(ws, w)
	}
	total := int(float64(rate) * d.Seconds())
	var t timed
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, total)
			for len(lat) < total {
				ev, ok := <-w.ResultChan()
				if !ok {
					break
				}
				now := time.Now()
				if ev.Type != watch.Added {
					continue
				}
				cm, ok := ev.Object.(*corev1.ConfigMap)
				if !ok {
					continue
				}
				sent, err := strconv.ParseInt(cm.Annotations[sentAnnotation], 10, 64)
				if err == nil {
					lat = append(lat, now.Sub(time.Unix(0, sent)))
				}
			}
			t.add(lat, total-len(lat))
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var writeErrs atomic.Int64
	var writes sync.WaitGroup
	inFlight := make(chan struct{}, rate)
	started := 0
	for i := 0; i < total && ctx.Err() == nil; i++ {
		<-tick.C
		inFlight <- struct{}{}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w%d-r%d-%d", watchers, run, i),
			Annotations: map[string]string{sentAnnotation: strconv.FormatInt(time.Now().UnixNano(), 10)}}, Data: map[string]string{"v": "x"}}
		writes.Go(func() {
			defer func() { <-inFlight }()
			if _, err := writer.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				writeErrs.Add(1)
			}
		})
		started++
	}
	if started > 0 {
		written = float64(started) / time.Since(start).Seconds() // to the last start
	}
	writes.Wait()
	// Give stragglers a moment, then stop whoever still waits (a missing event is an error).
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cancel()
		<-done
	}
	s = Summarize(t.lat, t.errs, time.Since(start))
	s.Errors += int(writeErrs.Load())
	return s, written, nil
}

// runPacedCreates creates ConfigMaps at a fixed rate shared by the clients for d: the
// "at 500 writes/s" of the latency target. Each latency counts from the moment its write
// was due, so a server that falls behind shows it (no coordinated omission).
func runPacedCreates(ctx context.Context, cs []kubernetes.Interface, ns string, rate int, d time.Duration) Summary {
	due := make(chan time.Time, rate) // a second of backlog at most; beyond it ticks drop
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	go func() {
		defer close(due)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case t := <-tick.C:
				select {
				case due <- t:
				default:
				}
			}
		}
	}()
	payload := strings.Repeat("x", 1024)
	var t timed
	var wg sync.WaitGroup
	start := time.Now()
	for c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for i := 0; ; i++ {
				at, ok := <-due
				if !ok {
					break
				}
				_, err := cs[c].CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("paced-%d-%d", c, i)}, Data: map[string]string{"v": payload}}, metav1.CreateOptions{})
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(at))
			}
			t.add(lat, errs)
		}()
	}
	wg.Wait()
	return Summarize(t.lat, t.errs, time.Since(start))
}

// watchRun is one run of a watch fan-out step.
type watchRun struct {
	s       Summary
	written float64
}

// medianWatchRun returns the run whose p99 is the median of the runs' (the upper one of
// an even count), and every run's p99 in milliseconds, in run order, for the row's note.
func medianWatchRun(runs []watchRun) (watchRun, string) {
	if len(runs) == 0 {
		return watchRun{}, ""
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b watchRun) int { return cmp.Compare(a.s.P99, b.s.P99) })
	p99s := make([]string, len(runs))
	for i, r := range runs {
		p99s[i] = strconv.FormatFloat(float64(r.s.P99)/float64(time.Millisecond), 'f', 1, 64)
	}
	return sorted[len(sorted)/2], strings.Join(p99s, ", ")
}
