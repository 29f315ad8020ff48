package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// errCASFailed marks a create or update that certainly did not apply: the precondition
// failed (409 Conflict or AlreadyExists; a failed etcd Txn compare).
var errCASFailed = errors.New("compare-and-swap failed")

// regStore is what the register workload needs from a system under test, through one
// server: a linearizable read, a create-if-absent and an update-if-at-version. An absent
// key reads as "" at version "".
type regStore interface {
	get(ctx context.Context, key string) (value, version string, err error)
	create(ctx context.Context, key, value string) error
	update(ctx context.Context, key, value, version string) error
}

// registerLoad runs the register workload: clients, each pinned to one server, reading
// random keys and compare-and-swapping new unique values into half of what they read.
type registerLoad struct {
	hist    *regHistory
	keys    int
	timeout time.Duration // per operation; its expiry leaves a write's outcome unknown
	tl      *timeline
	verbs   *verbStats // nil: not kept

	mu        sync.Mutex
	successes successLog // acknowledged writes per server

	errs atomic.Int64
}

func newRegisterLoad(t0 time.Time, keys int, timeout time.Duration) *registerLoad {
	return &registerLoad{hist: newRegHistory(t0), keys: keys, timeout: timeout, tl: newTimeline(t0), successes: successLog{}}
}

func (l *registerLoad) key(i int) string { return fmt.Sprintf("chaos-%d", i) }

// run drives one client until ctx ends.
func (l *registerLoad) run(ctx context.Context, client int, server string, st regStore) {
	rng := rand.New(rand.NewPCG(uint64(client), 0xc4a05))
	for i := 0; ctx.Err() == nil; i++ {
		key := l.key(rng.IntN(l.keys))
		octx, cancel := context.WithTimeout(ctx, l.timeout)
		call, t := l.hist.now(), time.Now()
		cur, ver, err := st.get(octx, key)
		l.verb("register get", time.Since(t), err)
		if err != nil {
			cancel()
			l.fail(ctx)
			continue // a failed read has no effect: leave it out
		}
		l.tl.record(time.Since(t), true)
		l.hist.add(client, regInput{Server: server, Op: "get", Key: key}, call, regOutput{Value: cur})
		if rng.IntN(2) == 0 {
			cancel()
			continue
		}
		val := fmt.Sprintf("c%d-%d", client, i)
		call, t = l.hist.now(), time.Now()
		if cur == "" {
			err = st.create(octx, key, val)
		} else {
			err = st.update(octx, key, val, ver)
		}
		cancel()
		if ctx.Err() == nil {
			l.verb("register cas", time.Since(t), err)
		}
		if ctx.Err() != nil && err != nil {
			// The run ended under it: its outcome is unknown, like a timeout.
			l.hist.add(client, regInput{Server: server, Op: "cas", Key: key, Value: val, Expect: cur}, call, regOutput{Unknown: true})
			return
		}
		definite := err == nil || errors.Is(err, errCASFailed)
		l.hist.add(client, regInput{Server: server, Op: "cas", Key: key, Value: val, Expect: cur}, call,
			regOutput{OK: err == nil, Unknown: !definite})
		if err == nil {
			l.mu.Lock()
			l.successes[server] = append(l.successes[server], time.Since(l.hist.t0))
			l.mu.Unlock()
			l.tl.record(time.Since(t), true)
		} else if !definite {
			l.fail(ctx)
		}
	}
}

func (l *registerLoad) verb(v string, lat time.Duration, err error) {
	if errors.Is(err, errCASFailed) {
		err = nil // answered: the precondition failed
	}
	if l.verbs != nil {
		l.verbs.record(v, lat, err)
	}
}

// fail counts an error and backs off a little, so a dead server is not hammered in a loop.
func (l *registerLoad) fail(ctx context.Context) {
	l.errs.Add(1)
	l.tl.record(0, false)
	select {
	case <-ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

// allWroteSince reports whether every server has acknowledged a write after since (from
// the start of the load).
func (l *registerLoad) allWroteSince(servers []string, since time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range servers {
		ts := l.successes[s]
		if len(ts) == 0 || ts[len(ts)-1] <= since {
			return false
		}
	}
	return true
}

// successTimes returns a sorted copy of the acknowledged-write times, every server present.
func (l *registerLoad) successTimes(servers []string) successLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := successLog{}
	for _, s := range servers {
		out[s] = append([]time.Duration(nil), l.successes[s]...) // appended in order per client; sort below
		sortDurations(out[s])
	}
	return out
}

// finalReads reads every key once more after the load, through st with retries, and adds
// the reads to the history so that the checker covers them too.
func (l *registerLoad) finalReads(ctx context.Context, server string, st regStore) (map[string]string, error) {
	final := map[string]string{}
	for k := range l.keys {
		key := l.key(k)
		var err error
		for try := 0; try < 30; try++ {
			octx, cancel := context.WithTimeout(ctx, l.timeout)
			call := l.hist.now()
			var v string
			v, _, err = st.get(octx, key)
			cancel()
			if err == nil {
				l.hist.add(-1, regInput{Server: server, Op: "get", Key: key}, call, regOutput{Value: v})
				final[key] = v
				break
			}
			select {
			case <-ctx.Done():
				return final, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		if err != nil {
			return final, fmt.Errorf("bench: final read of %s: %w", key, err)
		}
	}
	return final, nil
}
