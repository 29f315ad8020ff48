package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ServerResources is one server's memory and CPU over the run, from /proc.
type ServerResources struct {
	Name       string  `json:"name"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	MeanRSSMiB float64 `json:"mean_rss_mib"`
	CPUSeconds float64 `json:"cpu_s"`
	CPUPercent float64 `json:"cpu_percent"` // mean over the run, of one core
}

// resourceSampler reads each server's RSS and CPU time every second. A restarted server
// is a new pid; its CPU time counts from its start.
type resourceSampler struct {
	pid func(name string) int
	per map[string]*resAcc
}

type resAcc struct {
	pid            int
	lastTicks      uint64
	ticks          uint64
	rssSum, rssMax uint64
	samples        int
}

func newResourceSampler(names []string, pid func(string) int) *resourceSampler {
	s := &resourceSampler{pid: pid, per: map[string]*resAcc{}}
	for _, n := range names {
		s.per[n] = &resAcc{}
	}
	return s
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

func (s *resourceSampler) sample() {
	for name, a := range s.per {
		pid := s.pid(name)
		if pid <= 0 {
			continue
		}
		ticks, rss, err := procUsage(pid)
		if err != nil {
			continue
		}
		if pid != a.pid {
			a.pid, a.lastTicks = pid, 0
		}
		if ticks >= a.lastTicks {
			a.ticks += ticks - a.lastTicks
		}
		a.lastTicks = ticks
		a.rssSum += rss
		a.rssMax = max(a.rssMax, rss)
		a.samples++
	}
}

// run samples until ctx ends, and returns the figures over elapsed wall time.
func (s *resourceSampler) run(ctx context.Context) []ServerResources {
	t0 := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.sample()
		select {
		case <-ctx.Done():
			return s.results(time.Since(t0))
		case <-tick.C:
		}
	}
}

func (s *resourceSampler) results(over time.Duration) []ServerResources {
	var out []ServerResources
	for name, a := range s.per {
		r := ServerResources{Name: name, PeakRSSMiB: float64(a.rssMax) / (1 << 20), CPUSeconds: float64(a.ticks) / clkTck}
		if a.samples > 0 {
			r.MeanRSSMiB = float64(a.rssSum) / float64(a.samples) / (1 << 20)
		}
		r.CPUPercent = 100 * r.CPUSeconds / max(over.Seconds(), 1)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ServerResources) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// procUsage reads a process's user+system CPU ticks and its resident set in bytes.
func procUsage(pid int) (ticks, rss uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(string(b), os.Getpagesize())
}

// parseProcStat takes utime, stime (fields 14 and 15) and rss in pages (field 24) from
// /proc/<pid>/stat; the command name (field 2) may hold spaces, so fields count from its
// closing parenthesis.
func parseProcStat(stat string, pageSize int) (ticks, rss uint64, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bench: malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("bench: short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	pages, err3 := strconv.ParseUint(f[21], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, fmt.Errorf("bench: malformed /proc stat numbers")
	}
	return ut + st, pages * uint64(pageSize), nil
}
