package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/skiff-dev/skiff/raftstore"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

// The register model: each key holds a string ("" when absent). Clients put unique values,
// read, and compare-and-swap (the store's CAS is by revision; since every written value is
// unique, "at the revision I read" is "holding the value I read").
type regInput struct {
	node   string // the node that served it (for diagnosis; the model ignores it)
	op     string // "get", "put", "cas"
	key    string
	value  string // put, cas: the new value
	expect string // cas: the value read before ("" means create)
}

type regOutput struct {
	value   string // get
	ok      bool   // cas: whether it applied
	unknown bool   // write outcome unknown (timeout, lost leader): may or may not have applied
}

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(string), input.(regInput), output.(regOutput)
		switch in.op {
		case "get":
			return out.value == s, s
		case "put":
			return true, in.value
		default: // cas
			if out.unknown {
				if s == in.expect {
					return true, in.value
				}
				return true, s
			}
			if out.ok {
				return s == in.expect, in.value
			}
			return s != in.expect, s
		}
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(regInput), output.(regOutput)
		return fmt.Sprintf("%s@%s(%s %q %q) -> %+v", in.op, in.node, in.key, in.expect, in.value, out)
	},
}

// history records operations against one clock.
type history struct {
	mu  sync.Mutex
	t0  time.Time
	ops []porcupine.Operation
}

func (h *history) now() int64 { return time.Since(h.t0).Nanoseconds() }

func (h *history) add(client int, in regInput, call int64, out regOutput) {
	ret := h.now()
	if out.unknown {
		ret = 1 << 62 // it may take effect at any time after its call
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// definite reports whether a failed write certainly did not apply.
func definite(err error) bool {
	return errors.Is(err, raftstore.ErrConflict) || errors.Is(err, raftstore.ErrKeyExists) || errors.Is(err, raftstore.ErrNotFound)
}

// runClient does random gets, puts and read-then-CAS on a few keys through one node.
func runClient(ctx context.Context, h *history, client int, node *rafttest.Node, stale bool) {
	rng := rand.New(rand.NewPCG(uint64(client), 7))
	for i := 0; ctx.Err() == nil; i++ {
		s := node.Store()
		if s == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		key := fmt.Sprintf("/lin/%d", rng.IntN(3))
		id := node.ID
		val := fmt.Sprintf("c%d-%d", client, i)
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		switch rng.IntN(3) {
		case 0:
			call := h.now()
			_, err := s.Put(octx, key, []byte(val))
			if err == nil || !definite(err) {
				h.add(client, regInput{node: id, op: "put", key: key, value: val}, call, regOutput{unknown: err != nil})
			}
		default:
			call := h.now()
			kv, err := s.Get(octx, key, raftstore.ReadOptions{Stale: stale})
			if err != nil && !errors.Is(err, raftstore.ErrNotFound) {
				cancel()
				continue // a failed read has no effect: leave it out
			}
			cur := string(kv.Value)
			h.add(client, regInput{node: id, op: "get", key: key}, call, regOutput{value: cur})
			if rng.IntN(2) == 0 {
				break
			}
			call = h.now()
			if cur == "" {
				_, err = s.Create(octx, key, []byte(val))
			} else {
				_, err = s.Update(octx, key, []byte(val), kv.ModRevision)
			}
			h.add(client, regInput{node: id, op: "cas", key: key, value: val, expect: cur}, call,
				regOutput{ok: err == nil, unknown: err != nil && !definite(err)})
		}
		cancel()
	}
}

// checkHistory checks the history against the register model. A write with an unknown
// outcome that nothing could have observed is dropped first (as etcd's robustness suite
// does), which keeps the search from exploding on pending operations. Nothing observed it
// when no read returned its value, no CAS expected it, and no CAS on its key that failed
// could come after it: a failed CAS observes that some write happened, even unread.
func checkHistory(t *testing.T, h *history) porcupine.CheckResult {
	t.Helper()
	seen := map[string]bool{}
	lastFailedCAS := map[string]int64{} // key -> latest return of a CAS that definitely failed
	for _, op := range h.ops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		switch {
		case in.op == "get":
			seen[out.value] = true
		case in.op == "cas":
			seen[in.expect] = true
			if !out.ok && !out.unknown && op.Return > lastFailedCAS[in.key] {
				lastFailedCAS[in.key] = op.Return
			}
		}
	}
	var ops []porcupine.Operation
	dropped := 0
	for _, op := range h.ops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if in.op != "get" && out.unknown && !seen[in.value] && lastFailedCAS[in.key] < op.Call {
			dropped++
			continue
		}
		ops = append(ops, op)
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, 60*time.Second)
	t.Logf("%d operations (%d unobserved writes of unknown outcome dropped): %s", len(ops), dropped, res)
	if res != porcupine.Ok {
		explain(t, info, ops)
		// Keep the evidence: porcupine's visualization of the longest linearizable prefixes.
		if f, err := os.CreateTemp("", "skiff-porcupine-*.html"); err == nil {
			if porcupine.Visualize(registerModel, info, f) == nil {
				t.Logf("visualization: %s", f.Name())
			}
			f.Close()
		}
	}
	return res
}

func TestHistoryIsLinearizableUnderLeaderKillAndPartition(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 120*time.Second)
	h := &history{t0: time.Now()}
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			runClient(loadCtx, h, i, c.Nodes[i%3], false)
		}(i)
	}
	time.Sleep(1500 * time.Millisecond)
	leader := c.Leader()
	leader.Stop()
	time.Sleep(1000 * time.Millisecond)
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	c.WaitLeader(10 * time.Second)
	time.Sleep(500 * time.Millisecond)
	cut := c.Leader() // a leader cut off on the minority side
	cut.Layer.Isolate(true)
	time.Sleep(1500 * time.Millisecond)
	cut.Layer.Isolate(false)
	time.Sleep(1000 * time.Millisecond)
	stop()
	wg.Wait()
	if len(h.ops) < 100 {
		t.Fatalf("only %d operations recorded", len(h.ops))
	}
	if res := checkHistory(t, h); res != porcupine.Ok {
		t.Fatalf("history is not linearizable: %s", res)
	}
}

// TestCheckerCatchesStaleReads runs the same check over a read path that is wrong on
// purpose (stale reads from a follower cut off from the leader): it must fail, which shows
// the check above can catch a bug.
func TestCheckerCatchesStaleReads(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 60*time.Second)
	h := &history{t0: time.Now()}
	f := c.Followers()[0]
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		node := c.Leader()
		if i%2 == 1 {
			node = f
		}
		go func(i int, n *rafttest.Node) {
			defer wg.Done()
			runClient(loadCtx, h, i, n, n == f)
		}(i, node)
	}
	time.Sleep(500 * time.Millisecond)
	f.Layer.Isolate(true)
	time.Sleep(1500 * time.Millisecond)
	stop()
	wg.Wait()
	if res := checkHistory(t, h); res != porcupine.Illegal {
		t.Fatalf("stale reads from a partitioned follower passed the check: %s", res)
	}
}

// explain logs, for each failing key, how the longest linearizable prefix ends and which
// operations could not follow it.
func explain(t *testing.T, info porcupine.LinearizationInfo, all []porcupine.Operation) {
	for _, part := range info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, lin := range part {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
		if len(longest) == 0 {
			continue
		}
		k := longest[0].Input.(regInput).key
		t.Logf("key %s: longest linearizable prefix has %d ops; its last ones:", k, len(longest))
		for _, op := range longest[max(0, len(longest)-6):] {
			t.Logf("  [%d..%d] c%d %s", op.Call/1e6, op.Return/1e6, op.ClientId, registerModel.DescribeOperation(op.Input, op.Output))
		}
		in := map[porcupine.Operation]bool{}
		for _, op := range longest {
			in[op] = true
		}
		n := 0
		for _, op := range all {
			if op.Input.(regInput).key == k && !in[op] && n < 12 {
				n++
				t.Logf("    left out: [%.1f..%.1f] c%d %s", float64(op.Call)/1e6, float64(op.Return)/1e6, op.ClientId, registerModel.DescribeOperation(op.Input, op.Output))
			}
		}
	}
}
