package bench

import (
	"testing"
	"time"
)

func TestPacedAtIsAFixedSchedule(t *testing.T) {
	for _, c := range []struct {
		i    int
		rate float64
		want time.Duration
	}{
		{0, 5, 0},
		{1, 5, 200 * time.Millisecond},
		{99, 5, 19800 * time.Millisecond},
		{3, 0.5, 6 * time.Second},
	} {
		if got := pacedAt(c.i, c.rate); got != c.want {
			t.Errorf("pacedAt(%d, %g) = %s, want %s", c.i, c.rate, got, c.want)
		}
	}
}

func TestLatencySummaryNearestRank(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	p50, p90, p99, maxMs := latencySummary(lat)
	if p50 != 50 || p90 != 90 || p99 != 99 || maxMs != 100 {
		t.Errorf("got p50 %g p90 %g p99 %g max %g, want 50 90 99 100", p50, p90, p99, maxMs)
	}
	// With fewer than 100 samples the p99 is the maximum (nearest rank).
	_, _, p99, maxMs = latencySummary([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	if p99 != 3 || maxMs != 3 {
		t.Errorf("3 samples: p99 %g max %g, want 3 and 3", p99, maxMs)
	}
	if a, b, c, d := latencySummary(nil); a != 0 || b != 0 || c != 0 || d != 0 {
		t.Errorf("no samples: %g %g %g %g, want zeros", a, b, c, d)
	}
}

func TestParseCPUStatUsage(t *testing.T) {
	got, ok := parseCPUStatUsage("usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n")
	if !ok || got != 1234567*time.Microsecond {
		t.Errorf("got %s %v, want 1.234567s true", got, ok)
	}
	if _, ok := parseCPUStatUsage("user_usec 5\n"); ok {
		t.Error("no usage_usec: want false")
	}
}
