package bench

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// timeline buckets the workload's operations by second: count, errors and latencies, for
// the progress line and the chart.
type timeline struct {
	t0      time.Time
	mu      sync.Mutex
	buckets []bucket
}

type bucket struct {
	ops, errs int
	lat       []time.Duration
}

func newTimeline(t0 time.Time) *timeline { return &timeline{t0: t0} }

func (tl *timeline) record(lat time.Duration, ok bool) {
	sec := int(time.Since(tl.t0) / time.Second)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for len(tl.buckets) <= sec {
		tl.buckets = append(tl.buckets, bucket{})
	}
	b := &tl.buckets[sec]
	if ok {
		b.ops++
		b.lat = append(b.lat, lat)
	} else {
		b.errs++
	}
}

// rate returns ops and errors per second over the last n complete seconds.
func (tl *timeline) rate(n int) (ops, errs float64) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	end := len(tl.buckets) - 1 // the current second is incomplete
	start := max(0, end-n)
	if end <= start {
		return 0, 0
	}
	for _, b := range tl.buckets[start:end] {
		ops += float64(b.ops)
		errs += float64(b.errs)
	}
	return ops / float64(end-start), errs / float64(end-start)
}

// point is one second of the chart.
type point struct {
	Sec      int     `json:"sec"`
	Ops      int     `json:"ops"`
	Errors   int     `json:"errors"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P999Ms   float64 `json:"p999_ms"`
	Observed bool    `json:"-"`
}

func (tl *timeline) points() []point {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := make([]point, len(tl.buckets))
	for i, b := range tl.buckets {
		out[i] = point{Sec: i, Ops: b.ops, Errors: b.errs,
			P50Ms: ms(percentile(b.lat, 0.5)), P99Ms: ms(percentile(b.lat, 0.99)), P999Ms: ms(percentile(b.lat, 0.999))}
	}
	return out
}

func sortDurations(ds []time.Duration) { slices.Sort(ds) }

// writeTimelineSVG draws throughput (ops/s, errors/s) and p99 latency over time, with each
// fault as a shaded band labelled with its kind: a plain SVG a browser opens from disk.
func writeTimelineSVG(w io.Writer, pts []point, faults []FaultResult) error {
	const W, H, left, right, top, mid, bottom = 1200.0, 560.0, 60.0, 20.0, 30.0, 270.0, 520.0
	n := max(len(pts), 1)
	x := func(sec float64) float64 { return left + sec*(W-left-right)/float64(n) }
	var maxOps, maxLat float64 = 1, 1
	for _, p := range pts {
		maxOps = max(maxOps, float64(p.Ops), float64(p.Errors))
		maxLat = max(maxLat, p.P99Ms)
	}
	yOps := func(v float64) float64 { return mid - 10 - v*(mid-10-top)/maxOps }
	yLat := func(v float64) float64 { return bottom - v*(bottom-mid-30)/maxLat }
	pf := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	pf(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", W, H)
	pf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	for _, f := range faults {
		x0, x1 := x(f.StartS), x(f.EndS)
		pf(`<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#f4a" fill-opacity="0.15"/>`+"\n", x0, top, max(x1-x0, 1), bottom-top)
		pf(`<text x="%.1f" y="%.0f" font-size="9" transform="rotate(-90 %.1f %.0f)" fill="#a06">%s</text>`+"\n", x0+9, bottom-4, x0+9, bottom-4, f.Kind)
	}
	line := func(color string, val func(point) float64, y func(float64) float64) {
		pf(`<polyline fill="none" stroke="%s" stroke-width="1.2" points="`, color)
		for _, p := range pts {
			pf("%.1f,%.1f ", x(float64(p.Sec)+0.5), y(val(p)))
		}
		pf("\"/>\n")
	}
	line("#1f77b4", func(p point) float64 { return float64(p.Ops) }, yOps)
	line("#d62728", func(p point) float64 { return float64(p.Errors) }, yOps)
	line("#2ca02c", func(p point) float64 { return p.P99Ms }, yLat)
	line("#9467bd", func(p point) float64 { return p.P50Ms }, yLat)
	pf(`<text x="%.0f" y="18" font-size="13">register workload: ops/s (blue), errors/s (red); faults shaded</text>`+"\n", left)
	pf(`<text x="%.0f" y="%.0f" font-size="13">latency of successful ops: p99 (green), p50 (purple), ms</text>`+"\n", left, mid+14)
	pf(`<text x="4" y="%.0f">%.0f</text><text x="4" y="%.0f">0</text>`+"\n", top+8, maxOps, mid-10)
	pf(`<text x="4" y="%.0f">%.0f ms</text><text x="4" y="%.0f">0</text>`+"\n", mid+38, maxLat, bottom)
	for s := 0; s < n; s += 30 {
		pf(`<text x="%.1f" y="%.0f">%ds</text>`+"\n", x(float64(s)), H-22, s)
	}
	pf(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/>`+"\n", left, mid-10, W-right, mid-10)
	pf(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/>`+"\n", left, bottom, W-right, bottom)
	_, err := fmt.Fprintln(w, "</svg>")
	return err
}
