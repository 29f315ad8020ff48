package bench

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The chaos register: each key (a ConfigMap, or an etcd key for the peer) holds a string, ""
// when absent. Clients write unique values, read, and compare-and-swap. The API's CAS is by
// resourceVersion; since every written value is unique, "at the version I read" is "holding
// the value I read", so the model needs only values.
type regInput struct {
	Server string `json:"server"` // which server served it, for diagnosis only
	Op     string `json:"op"`     // "get" or "cas" (a create is a cas expecting "")
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`  // cas: the new value
	Expect string `json:"expect,omitempty"` // cas: the value read before ("" means create)
}

type regOutput struct {
	Value   string `json:"value,omitempty"` // get
	OK      bool   `json:"ok"`              // cas: it applied
	Unknown bool   `json:"unknown"`         // cas: timeout or broken connection, may have applied
}

// unknownReturn is the return time of an operation whose outcome is unknown: it may take
// effect at any time after its call.
const unknownReturn = int64(1) << 62

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(regInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(regInput), output.(regOutput)
		if in.Op == "get" {
			return out.Value == s, s
		}
		switch {
		case out.Unknown:
			if s == in.Expect {
				return true, in.Value
			}
			return true, s
		case out.OK:
			return s == in.Expect, in.Value
		default:
			return s != in.Expect, s
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		return fmt.Sprintf("%s@%s(%s %q->%q) -> %+v", in.Op, in.Server, in.Key, in.Expect, in.Value, out)
	},
}

// regHistory records operations against one monotonic clock, shared by all clients.
type regHistory struct {
	mu  sync.Mutex
	t0  time.Time
	ops []porcupine.Operation
}

func newRegHistory(t0 time.Time) *regHistory { return &regHistory{t0: t0} }

func (h *regHistory) now() int64 { return time.Since(h.t0).Nanoseconds() }

func (h *regHistory) add(client int, in regInput, call int64, out regOutput) {
	ret := h.now()
	if out.Unknown {
		ret = unknownReturn
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

func (h *regHistory) snapshot() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// historyCheck is the verdict on a register history.
type historyCheck struct {
	Result     porcupine.CheckResult
	Ops        int // operations checked
	Dropped    int // unobserved writes of unknown outcome left out
	LostWrites []string
	Info       porcupine.LinearizationInfo
}

// pruneUnobserved drops writes of unknown outcome that nothing could have observed, as
// etcd's robustness suite does; it keeps the search from exploding on pending operations
// and changes no verdict. Nothing observed such a write when no read returned its value, no
// CAS expected it, and no definitely failed CAS on its key came after its call (a failed CAS
// observes that some write happened, even unread).
func pruneUnobserved(ops []porcupine.Operation) (kept []porcupine.Operation, dropped int) {
	seen := map[string]bool{}
	lastFailedCAS := map[string]int64{}
	for _, op := range ops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if in.Op == "get" {
			seen[out.Value] = true
			continue
		}
		seen[in.Expect] = true
		if !out.OK && !out.Unknown && op.Return > lastFailedCAS[in.Key] {
			lastFailedCAS[in.Key] = op.Return
		}
	}
	for _, op := range ops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if in.Op != "get" && out.Unknown && !seen[in.Value] && lastFailedCAS[in.Key] < op.Call {
			dropped++
			continue
		}
		kept = append(kept, op)
	}
	return kept, dropped
}

// lostWrites compares each key's final value, read after the run, with the acknowledged
// writes. An acknowledged write w is lost when the final value is absent, is no value any
// client wrote, or was written by an operation that returned before w was called: with
// unique values, nothing could have put it back after w.
func lostWrites(ops []porcupine.Operation, final map[string]string) []string {
	type write struct{ call, ret int64 }
	byValue := map[string]write{}
	for _, op := range ops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if in.Op == "cas" && (out.OK || out.Unknown) {
			byValue[in.Value] = write{op.Call, op.Return}
		}
	}
	var lost []string
	for _, op := range ops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if in.Op != "cas" || !out.OK {
			continue
		}
		fv, ok := final[in.Key]
		if !ok {
			continue // the key's final read failed; the checker reports that separately
		}
		fw, known := byValue[fv]
		if fv == "" || !known || fw.ret < op.Call {
			lost = append(lost, fmt.Sprintf("%s=%s (final %q)", in.Key, in.Value, fv))
		}
	}
	return lost
}

// checkRegister checks a history (with the final reads appended as gets) for
// linearizability and lost acknowledged writes.
func checkRegister(ops []porcupine.Operation, final map[string]string, timeout time.Duration) historyCheck {
	kept, dropped := pruneUnobserved(ops)
	res, info := porcupine.CheckOperationsVerbose(registerModel, kept, timeout)
	return historyCheck{Result: res, Ops: len(kept), Dropped: dropped, LostWrites: lostWrites(ops, final), Info: info}
}
