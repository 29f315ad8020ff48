package bench

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// verbStats counts operations, errors and latencies by verb over the whole run ("get",
// "cas" of the register; "deployment create", "pod create", ... of the pod workloads).
type verbStats struct {
	mu  sync.Mutex
	per map[string]*verbCount
}

type verbCount struct {
	ops, errs int
	lat       []time.Duration
}

func newVerbStats() *verbStats { return &verbStats{per: map[string]*verbCount{}} }

func (v *verbStats) record(verb string, lat time.Duration, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.per[verb]
	if c == nil {
		c = &verbCount{}
		v.per[verb] = c
	}
	if err != nil {
		c.errs++
		return
	}
	c.ops++
	c.lat = append(c.lat, lat)
}

// VerbResult is one verb's row in result.json and the summary.
type VerbResult struct {
	Verb   string  `json:"verb"`
	Ops    int     `json:"ops"`
	Errors int     `json:"errors"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	Rate   float64 `json:"ops_per_s"`
}

func (v *verbStats) results(over time.Duration) []VerbResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []VerbResult
	for verb, c := range v.per {
		out = append(out, VerbResult{Verb: verb, Ops: c.ops, Errors: c.errs,
			P50Ms: ms(percentile(c.lat, 0.5)), P99Ms: ms(percentile(c.lat, 0.99)), P999Ms: ms(percentile(c.lat, 0.999)),
			Rate: float64(c.ops) / max(over.Seconds(), 1)})
	}
	slices.SortFunc(out, func(a, b VerbResult) int { return strings.Compare(a.Verb, b.Verb) })
	return out
}
