package bench

import (
	"slices"
	"sort"
	"time"
)

// successLog holds, per server, the times of acknowledged writes, from which unavailability
// around a fault is computed after the run.
type successLog map[string][]time.Duration

// gap is the write unavailability a server saw around a fault that started at start: the
// time from its last acknowledged write at or before start to its first one after. When no
// write succeeded after it, the gap runs to end (and ok is false: it never recovered in
// the run). times must be sorted.
func gap(times []time.Duration, start, end time.Duration) (d time.Duration, ok bool) {
	i := sort.Search(len(times), func(i int) bool { return times[i] > start })
	before := start
	if i > 0 {
		before = times[i-1]
	}
	if i == len(times) {
		return end - before, false
	}
	return times[i] - before, true
}

// unavailability computes per-server gaps for a fault and the figure reported for it: the
// worst gap among the servers the fault did not target (the killed or isolated server's own
// clients wait for its restart, which the benchmark chooses), or among all servers when it
// targeted all of them.
func unavailability(log successLog, start, end time.Duration, targets []string) (worst time.Duration, per map[string]time.Duration) {
	per = map[string]time.Duration{}
	var spared, all time.Duration
	for srv, times := range log {
		d, _ := gap(times, start, end)
		per[srv] = d
		all = max(all, d)
		// A server already down before the fault (no acknowledged write in the window
		// before it, e.g. one that an earlier fault left dead) says nothing about this one.
		if !slices.Contains(targets, srv) && !downBefore(times, start) {
			spared = max(spared, d)
		}
	}
	if len(targets) >= len(log) || spared == 0 {
		return all, per
	}
	return spared, per
}

// upWindow is how recently a server must have acknowledged a write to count as up when a
// fault starts.
const upWindow = 5 * time.Second

func downBefore(times []time.Duration, start time.Duration) bool {
	i := sort.Search(len(times), func(i int) bool { return times[i] > start })
	return i == 0 || start-times[i-1] > upWindow
}

// percentile returns the p-th percentile (0..1) of ds by nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
