package bench

import (
	"math"
	"slices"
	"time"
)

// Summary is the throughput and latency of one workload run.
type Summary struct {
	Ops       int
	Errors    int
	OpsPerSec float64
	P50       time.Duration
	P99       time.Duration
	P999      time.Duration
}

// Summarize computes a Summary from per-operation latencies measured over elapsed. It sorts
// lat in place.
func Summarize(lat []time.Duration, errs int, elapsed time.Duration) Summary {
	slices.Sort(lat)
	s := Summary{Ops: len(lat), Errors: errs}
	if elapsed > 0 {
		s.OpsPerSec = float64(len(lat)) / elapsed.Seconds()
	}
	s.P50 = Percentile(lat, 0.50)
	s.P99 = Percentile(lat, 0.99)
	s.P999 = Percentile(lat, 0.999)
	return s
}

// Percentile returns the q-quantile (0 < q <= 1) of sorted by the nearest-rank method: the
// smallest sample that at least q of all samples are at or below. With fewer samples than
// 1/(1-q), the tail percentiles are the maximum, which is the honest answer. Zero for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps float error (0.99*100 = 99.00000000000001) from skipping a rank.
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ms converts a duration to fractional milliseconds for reports.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
