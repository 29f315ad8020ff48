package bench

import (
	"testing"
	"time"
)

// The sampler follows scheduler_perf's throughputCollector: nothing before the first bound
// pod, the first sample dropped, idle seconds folded into the next rate.
func TestThroughputSamplerFollowsSchedulerPerf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var s throughputSampler
	for i, bound := range []int{0, 0, 50, 150, 450, 450, 450, 750, 1750} {
		s.observe(t0.Add(time.Duration(i)*time.Second), bound)
	}
	// 50 is the start; then 100/s, 300/s, two idle seconds and 300 in three seconds (100/s
	// three times), then 1000/s.
	want := []float64{100, 300, 100, 100, 100, 1000}
	if len(s.samples) != len(want) {
		t.Fatalf("samples %v, want %v", s.samples, want)
	}
	for i := range want {
		if s.samples[i] != want[i] {
			t.Fatalf("samples %v, want %v", s.samples, want)
		}
	}
	got := s.summary()
	if got.Samples != 6 || got.Average != 1700.0/6 {
		t.Errorf("summary %+v: want 6 samples averaging %.1f", got, 1700.0/6)
	}
	// Sorted: 100 100 100 100 300 1000; nearest rank ceil(n*p/100).
	if got.Perc50 != 100 || got.Perc90 != 1000 || got.Perc99 != 1000 {
		t.Errorf("percentiles %+v, want p50 100, p90 and p99 1000", got)
	}
	var empty throughputSampler
	empty.observe(t0, 10)
	if empty.summary() != nil {
		t.Errorf("one observation made a summary")
	}
}
