package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Phases bounds one workload run: Warmup is run and discarded (connections, leader caches,
// JIT-free but page-cache warm), Measure is what the numbers cover.
type Phases struct {
	Warmup  time.Duration
	Measure time.Duration
}

// opTimeout bounds one operation so that a stuck system shows up as errors, not a hang.
const opTimeout = 10 * time.Second

// Workload parameters shared by both systems.
const (
	valueSize    = 1 << 10
	putKeySpace  = 10000
	getKeySpace  = 1000
	watchRateDef = 100 // puts per second in the watch workload: modest and steady
)

// dialClients opens n clients spread round-robin over the members, starting with the first
// member after the leader. Where the leader sits is chance; starting from it gives both
// systems the same placement (one client sits on a follower and pays the forwarding hop, as
// two in three real clients of a three-member cluster do).
func dialClients(ctx context.Context, sys system, n int) ([]client, error) {
	leader, err := sys.Leader(ctx)
	if err != nil {
		return nil, err
	}
	var cs []client
	for i := range n {
		c, err := sys.Dial(ctx, (leader+1+i)%sys.Members())
		if err != nil {
			closeClients(cs)
			return nil, fmt.Errorf("bench: %s client %d: %w", sys.Name(), i, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeClients(cs []client) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// closedLoop runs op back to back on every client for warm-up plus measurement and
// summarizes the operations that started inside the measurement window.
func closedLoop(ctx context.Context, cs []client, ph Phases, op func(ctx context.Context, c client, id int, rng *rand.Rand) error) (Summary, error) {
	start := time.Now()
	measureStart := start.Add(ph.Warmup)
	measureEnd := measureStart.Add(ph.Measure)
	lats := make([][]time.Duration, len(cs))
	errs := make([]int, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(measureEnd) {
					return
				}
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				err := op(octx, c, i, rng)
				cancel()
				d := time.Since(t0)
				measured := !t0.Before(measureStart)
				switch {
				case err != nil && ctx.Err() == nil:
					if measured {
						errs[i]++
					}
					time.Sleep(10 * time.Millisecond) // don't spin on a failing system
				case err == nil && measured:
					lats[i] = append(lats[i], d)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Summary{}, err
	}
	var all []time.Duration
	nerr := 0
	for i := range cs {
		all = append(all, lats[i]...)
		nerr += errs[i]
	}
	return Summarize(all, nerr, ph.Measure), nil
}

func value() []byte {
	v := make([]byte, valueSize)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// runPut measures 1 KiB puts over a key space of putKeySpace keys.
func runPut(ctx context.Context, sys system, clients int, ph Phases) (Summary, error) {
	cs, err := dialClients(ctx, sys, clients)
	if err != nil {
		return Summary{}, err
	}
	defer closeClients(cs)
	v := value()
	return closedLoop(ctx, cs, ph, func(ctx context.Context, c client, _ int, rng *rand.Rand) error {
		return c.Put(ctx, "bench/put/"+strconv.Itoa(rng.IntN(putKeySpace)), v)
	})
}

// runGet loads getKeySpace keys, then measures linearizable gets of random ones.
func runGet(ctx context.Context, sys system, clients int, ph Phases) (Summary, error) {
	cs, err := dialClients(ctx, sys, clients)
	if err != nil {
		return Summary{}, err
	}
	defer closeClients(cs)
	if err := preload(ctx, cs, getKeySpace); err != nil {
		return Summary{}, fmt.Errorf("bench: %s preload: %w", sys.Name(), err)
	}
	return closedLoop(ctx, cs, ph, func(ctx context.Context, c client, _ int, rng *rand.Rand) error {
		return c.Get(ctx, getKey(rng.IntN(getKeySpace)))
	})
}

func getKey(i int) string { return fmt.Sprintf("bench/get/%04d", i) }

// preload writes keys 0..n-1 for the get workload, spread over the clients.
func preload(ctx context.Context, cs []client, n int) error {
	v := value()
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			for k := i; k < n && errs[i] == nil; k += len(cs) {
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				errs[i] = c.Put(octx, getKey(k), v)
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runWatch measures put-to-event delay: one writer on the leader puts at a steady rate, one
// watcher on a follower watches the prefix, and each event's delay is counted from the start
// of its put to its arrival at the watcher. The placement is fixed so that both systems are
// measured on the same path: commit on the leader, then the follower learning of it.
func runWatch(ctx context.Context, sys system, rate int, ph Phases) (Summary, error) {
	if sys.Members() < 2 {
		return Summary{}, errors.New("bench: the watch workload needs two members")
	}
	leader, err := sys.Leader(ctx)
	if err != nil {
		return Summary{}, err
	}
	writer, err := sys.Dial(ctx, leader)
	if err != nil {
		return Summary{}, fmt.Errorf("bench: %s writer: %w", sys.Name(), err)
	}
	defer writer.Close()
	watcher, err := sys.Dial(ctx, (leader+1)%sys.Members())
	if err != nil {
		return Summary{}, fmt.Errorf("bench: %s watcher: %w", sys.Name(), err)
	}
	defer watcher.Close()

	prefix := fmt.Sprintf("bench/watch/%d/", time.Now().UnixNano())
	tr := newWatchTracker()
	wctx, stopWatch := context.WithCancel(ctx)
	ready := make(chan struct{})
	watchErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer func() { // the watch goroutine is ours: end it and wait for it
		stopWatch()
		wg.Wait()
	}()
	wg.Go(func() {
		var once sync.Once
		err := watcher.Watch(wctx, prefix, func() { once.Do(func() { close(ready) }) }, func(key string) {
			tr.arrived(strings.TrimPrefix(key, prefix), time.Now())
		})
		watchErr <- err
	})
	select {
	case <-ready:
	case err := <-watchErr:
		return Summary{}, fmt.Errorf("bench: %s watch: %w", sys.Name(), err)
	case <-time.After(opTimeout):
		return Summary{}, fmt.Errorf("bench: %s watch not established in %v", sys.Name(), opTimeout)
	case <-ctx.Done():
		return Summary{}, ctx.Err()
	}

	start := time.Now()
	measureStart := start.Add(ph.Warmup)
	measureEnd := measureStart.Add(ph.Measure)
	// Puts are issued open-loop on the ticker, each in its own goroutine, so a slow put does
	// not lower the rate that the other puts see.
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	v := value()
	var putErrs atomic.Int64
	var puts sync.WaitGroup
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			puts.Wait()
			return Summary{}, ctx.Err()
		case <-tick.C:
		}
		t0 := time.Now()
		if !t0.Before(measureEnd) {
			break
		}
		measured := !t0.Before(measureStart)
		id := strconv.Itoa(seq)
		tr.started(id, t0, measured)
		puts.Go(func() {
			octx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			if err := writer.Put(octx, prefix+id, v); err != nil {
				tr.failed(id)
				if measured {
					putErrs.Add(1)
				}
			}
		})
	}
	puts.Wait()
	// Let the last events arrive, then count what never did as errors.
	if err := tr.waitAll(ctx, 5*time.Second, watchErr); err != nil {
		return Summary{}, fmt.Errorf("bench: %s watch: %w", sys.Name(), err)
	}
	if err := ctx.Err(); err != nil {
		return Summary{}, err
	}
	lat, lost := tr.result()
	return Summarize(lat, int(putErrs.Load())+lost, ph.Measure), nil
}

// watchTracker matches watch events to the puts that caused them.
type watchTracker struct {
	mu       sync.Mutex
	pending  map[string]watchPut
	lat      []time.Duration
	progress chan struct{} // signalled on every arrival
}

type watchPut struct {
	start    time.Time
	measured bool
}

func newWatchTracker() *watchTracker {
	return &watchTracker{pending: map[string]watchPut{}, progress: make(chan struct{}, 1)}
}

func (t *watchTracker) started(id string, at time.Time, measured bool) {
	t.mu.Lock()
	t.pending[id] = watchPut{start: at, measured: measured}
	t.mu.Unlock()
}

func (t *watchTracker) failed(id string) {
	t.mu.Lock()
	delete(t.pending, id)
	t.mu.Unlock()
}

func (t *watchTracker) arrived(id string, at time.Time) {
	t.mu.Lock()
	p, ok := t.pending[id]
	if ok {
		delete(t.pending, id)
		if p.measured {
			t.lat = append(t.lat, at.Sub(p.start))
		}
	}
	t.mu.Unlock()
	select {
	case t.progress <- struct{}{}:
	default:
	}
}

// waitAll waits until every started put's event arrived, up to grace.
func (t *watchTracker) waitAll(ctx context.Context, grace time.Duration, watchErr <-chan error) error {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		n := len(t.pending)
		t.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-t.progress:
		case <-deadline.C:
			return nil
		case err := <-watchErr:
			return fmt.Errorf("ended early: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// result returns the measured delays and how many measured puts' events never arrived.
func (t *watchTracker) result() ([]time.Duration, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	lost := 0
	for _, p := range t.pending {
		if p.measured {
			lost++
		}
	}
	return t.lat, lost
}
