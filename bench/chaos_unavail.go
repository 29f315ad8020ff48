package bench

import (
	"slices"
	"sort"
	"time"
)

// successLog holds, per server, the times of acknowledged writes, from which unavailability
// around a fault is computed after the run.
type successLog map[string][]time.Duration

// longestGap is the longest stretch without an acknowledged write on one server that
// overlaps the window [from, until]: from the last write at or before from, through every
// gap that starts inside the window. A quick write just after the fault starts (one already
// in flight) does not hide the outage that follows, and a disruption at recovery (a
// partitioned leader rejoining) counts too. When no write followed, the gap runs to end.
// times must be sorted.
func longestGap(times []time.Duration, from, until, end time.Duration) time.Duration {
	i := sort.Search(len(times), func(i int) bool { return times[i] > from })
	prev := from
	if i > 0 {
		prev = times[i-1]
	}
	var d time.Duration
	for ; i < len(times) && prev <= until; i++ {
		d = max(d, times[i]-prev)
		prev = times[i]
	}
	if i == len(times) && prev <= until {
		d = max(d, end-prev)
	}
	return d
}

// unavailability computes per-server write unavailability for a fault that started at
// start and after which the cluster was healthy again at until (the longest gap overlapping
// that window), and the figure reported for it: the worst among the servers the fault did
// not target (the killed or isolated server's own clients wait for its restart or heal,
// which the benchmark chooses; that is reported as targeted), or among all servers when it
// targeted all of them.
func unavailability(log successLog, start, until, end time.Duration, targets []string) (worst, targeted time.Duration, per map[string]time.Duration) {
	per = map[string]time.Duration{}
	var spared, all time.Duration
	for srv, times := range log {
		d := longestGap(times, start, max(until, start), end)
		per[srv] = d
		all = max(all, d)
		if slices.Contains(targets, srv) {
			targeted = max(targeted, d)
			continue
		}
		// A server already down before the fault (no acknowledged write in the window
		// before it, e.g. one that an earlier fault left dead) says nothing about this one.
		if !downBefore(times, start) {
			spared = max(spared, d)
		}
	}
	if len(targets) >= len(log) || spared == 0 {
		return all, targeted, per
	}
	return spared, targeted, per
}

// upWindow is how recently a server must have acknowledged a write to count as up when a
// fault starts (each server takes some 50 writes a second when up).
const upWindow = 2 * time.Second

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
