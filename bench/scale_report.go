package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// ScaleResult is `skiff bench scale`'s result.json.
type ScaleResult struct {
	Command string  `json:"command"`
	Machine Machine `json:"machine"`
	Nodes   int     `json:"nodes"`
	Pods    int     `json:"pods"`
	Via     string  `json:"via"` // "deployments" or "pods"
	// Simulator is what the nodes are: "hollow-nodes" (skiff's agents) or "kwok".
	Simulator string `json:"simulator"`
	// RaftHeartbeat is the servers' --raft-heartbeat-timeout ("" for their default).
	RaftHeartbeat string `json:"raft_heartbeat_timeout,omitempty"`

	// Converged is true when every pod was seen Running; Stopped says otherwise why the
	// run ended (a process exited, memory ran low, no progress, the timeout, interrupted).
	Converged bool   `json:"converged"`
	Stopped   string `json:"stopped,omitempty"`
	Phase     string `json:"phase"` // the phase it ended in: nodes, ramp, converge, settle, done

	NodesReadySeconds float64 `json:"nodes_ready_seconds"` // hollow-nodes started -> every node Ready
	// Pods as last seen by the bench's watch: existing, bound to a node, Running.
	Created int `json:"pods_created"`
	Bound   int `json:"pods_bound"`
	Running int `json:"pods_running"`
	// Scheduling is the binding figures, as `skiff bench scheduler` reports them (from the
	// same watch): throughput over first pod created to last bound, create->bound latency.
	Scheduling *SchedulerResult `json:"scheduling,omitempty"`
	// ConvergedSeconds is from the first create call to every pod seen Running (null when
	// it did not happen); the create->Running latency is per pod, from the same watch.
	ConvergedSeconds *float64 `json:"converged_seconds"`
	RunningP50Ms     float64  `json:"create_to_running_p50_ms"`
	RunningP99Ms     float64  `json:"create_to_running_p99_ms"`
	// LeaderChanges is how many Raft terms began during the ramp (every election, as the
	// other benchmarks count them); Leaders is the leader seen at each sample, when it changed.
	LeaderChanges int      `json:"leader_changes"`
	Leaders       []string `json:"leaders_seen,omitempty"`

	// API is the servers' request latency during the ramp by verb (all resources, SLO
	// exclusions left out); APISeries per verb and resource with the SLO check.
	API       []ScaleVerb   `json:"api_by_verb"`
	APISeries []ScaleSeries `json:"api_by_resource"`
	SLOMet    bool          `json:"api_slo_met"`
	APIFrom   string        `json:"api_measured"` // how and where the latency was measured

	Servers []ScaleMemory `json:"servers"`
	Hollow  *ScaleMemory  `json:"hollow_nodes,omitempty"` // the node simulator's processes (hollow-nodes or kwok), summed
	// MinMemAvailableMB is the machine's lowest MemAvailable seen.
	MinMemAvailableMB float64       `json:"min_mem_available_mb"`
	Timeline          []ScaleSample `json:"timeline"`
}

// ScaleVerb is the ramp's requests of one verb.
type ScaleVerb struct {
	Verb     string  `json:"verb"`
	Requests int     `json:"requests"`
	Failed   int     `json:"failed"` // answered 5xx or 429
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	// Above is true when p99 lies beyond the histograms' last bucket (P99Ms is that bound).
	Above bool `json:"p99_above_last_bucket,omitempty"`
}

// ScaleSeries is one verb and resource against the API call latency SLO.
type ScaleSeries struct {
	Verb     string  `json:"verb"`
	Resource string  `json:"resource"`
	Requests int     `json:"requests"`
	Failed   int     `json:"failed"`
	P99Ms    float64 `json:"p99_ms"`
	Above    bool    `json:"p99_above_last_bucket,omitempty"`
	SLOMs    float64 `json:"slo_ms"`
	Met      bool    `json:"slo_met"`
	// Unknown is true when p99 lies beyond the last bucket and the SLO beyond that too
	// (a list past 8.2 s against 30 s): the histogram cannot tell; Met is false.
	Unknown bool `json:"slo_unknown,omitempty"`
}

// ScaleMemory is one process's resident memory.
type ScaleMemory struct {
	Name string `json:"name"`
	// PeakMB is VmHWM, the kernel's high-water mark over the process's life.
	PeakMB float64 `json:"peak_rss_mb"`
	// SteadyMB is the mean VmRSS over the settle phase after convergence (or the last
	// reading, when the run did not converge).
	SteadyMB float64 `json:"steady_rss_mb"`
	Leader   bool    `json:"leader_at_end,omitempty"`
}

// ScaleSample is one progress reading.
type ScaleSample struct {
	Seconds float64   `json:"t_s"` // since the bench started
	Phase   string    `json:"phase"`
	Created int       `json:"created"`
	Bound   int       `json:"bound"`
	Running int       `json:"running"`
	Term    uint64    `json:"term"`
	Leader  string    `json:"leader,omitempty"`
	RSSMB   []float64 `json:"servers_rss_mb"`
	AvailMB float64   `json:"mem_available_mb"`
}

// verbRows and seriesRows turn the ramp's histograms into the report's rows.
func verbRows(latency map[apiSeries]histogram, failed map[apiSeries]float64) []ScaleVerb {
	byVerb := map[string]histogram{}
	failedBy := map[string]float64{}
	for k, h := range latency {
		if sloExcluded(k) {
			continue
		}
		byVerb[k.Verb] = byVerb[k.Verb].add(h)
	}
	for k, v := range failed {
		if !sloExcluded(k) {
			failedBy[k.Verb] += v
		}
	}
	var rows []ScaleVerb
	for verb, h := range byVerb {
		if h.Count == 0 {
			continue
		}
		p50, _ := h.quantile(0.50)
		p90, _ := h.quantile(0.90)
		p99, above := h.quantile(0.99)
		rows = append(rows, ScaleVerb{Verb: verb, Requests: int(h.Count), Failed: int(failedBy[verb]),
			P50Ms: p50 * 1000, P90Ms: p90 * 1000, P99Ms: p99 * 1000, Above: above})
	}
	slices.SortFunc(rows, func(a, b ScaleVerb) int { return strings.Compare(a.Verb, b.Verb) })
	return rows
}

func seriesRows(latency map[apiSeries]histogram, failed map[apiSeries]float64) (rows []ScaleSeries, met bool) {
	met = true
	for k, h := range latency {
		if sloExcluded(k) || h.Count == 0 {
			continue
		}
		p99, above := h.quantile(0.99)
		slo := sloThreshold(k.Verb)
		r := ScaleSeries{Verb: k.Verb, Resource: k.Resource, Requests: int(h.Count), Failed: int(failed[k]),
			P99Ms: p99 * 1000, Above: above, SLOMs: ms(slo)}
		r.Met = !above && p99 <= slo.Seconds()
		r.Unknown = above && p99 < slo.Seconds()
		met = met && r.Met
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b ScaleSeries) int {
		if c := strings.Compare(a.Verb, b.Verb); c != 0 {
			return c
		}
		return strings.Compare(a.Resource, b.Resource)
	})
	return rows, met
}

// p99Text shows a p99, with ">" when it lies beyond the last bucket.
func p99Text(v float64, above bool) string {
	if above {
		return fmt.Sprintf("> %.0f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// Markdown is summary.md, also the printed table.
func (r *ScaleResult) Markdown() string {
	var b strings.Builder
	sim := "hollow"
	if r.Simulator == simKwok {
		sim = "kwok"
	}
	fmt.Fprintf(&b, "# skiff bench scale: %d %s nodes, %d pods (%s)\n\n", r.Nodes, sim, r.Pods, r.Via)
	fmt.Fprintf(&b, "`%s`  \n%s, %d cores, %.0f MB; load average %.1f at the start, %.1f at the end",
		r.Command, r.Machine.Date, r.Machine.Cores, r.Machine.MemTotalMB, r.Machine.LoadStart[0], r.Machine.LoadEnd[0])
	if r.RaftHeartbeat != "" {
		fmt.Fprintf(&b, "; servers with --raft-heartbeat-timeout %s", r.RaftHeartbeat)
	}
	b.WriteString("\n\n")
	if r.Converged {
		fmt.Fprintf(&b, "**Converged**: every pod Running after %.1f s.\n\n", *r.ConvergedSeconds)
	} else {
		fmt.Fprintf(&b, "**Not converged** (stopped in phase %s): %s\n\n", r.Phase, r.Stopped)
	}
	b.WriteString("| figure | value |\n|---|---|\n")
	row := func(k, format string, a ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(format, a...)) }
	row("nodes Ready", "%d in %.1f s", r.Nodes, r.NodesReadySeconds)
	row("pods created / bound / Running", "%d / %d / %d of %d", r.Created, r.Bound, r.Running, r.Pods)
	if s := r.Scheduling; s != nil {
		row("scheduling throughput", "%.1f pods bound/s (first created -> last bound, %.1f s); %.1f/s from the first create call; peak second %d",
			s.PodsPerSecond, s.BoundIn, s.EndToEndPerSecond, s.PeakPerSecond)
		row("create -> bound p50 / p99", "%.0f / %.0f ms", s.P50Ms, s.P99Ms)
	}
	if r.ConvergedSeconds != nil {
		row("time to full convergence", "%.1f s (first create call -> last pod Running)", *r.ConvergedSeconds)
	} else {
		row("time to full convergence", "not reached")
	}
	if r.RunningP50Ms > 0 || r.RunningP99Ms > 0 {
		row("create -> Running p50 / p99", "%.0f / %.0f ms", r.RunningP50Ms, r.RunningP99Ms)
	}
	row("leader changes (Raft terms) during the ramp", "%d", r.LeaderChanges)
	row("lowest MemAvailable", "%.0f MB", r.MinMemAvailableMB)

	fmt.Fprintf(&b, "\n## API latency during the ramp, by verb\n\n%s\n\n", r.APIFrom)
	b.WriteString("| verb | requests | failed | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|\n")
	for _, v := range r.API {
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %.0f | %s |\n", v.Verb, v.Requests, v.Failed, v.P50Ms, v.P90Ms, p99Text(v.P99Ms, v.Above))
	}
	var missed, unknown []string
	for _, s := range r.APISeries {
		switch {
		case s.Unknown:
			unknown = append(unknown, fmt.Sprintf("%s %s p99 %s ms (SLO %.0f ms)", s.Verb, s.Resource, p99Text(s.P99Ms, s.Above), s.SLOMs))
		case !s.Met:
			missed = append(missed, fmt.Sprintf("%s %s p99 %s ms (SLO %.0f ms)", s.Verb, s.Resource, p99Text(s.P99Ms, s.Above), s.SLOMs))
		}
	}
	switch {
	case r.SLOMet:
		fmt.Fprintf(&b, "\nAPI call latency SLO met for all %d verb/resource series (p99 <= 1 s, lists <= 30 s).\n", len(r.APISeries))
	case len(missed) > 0:
		fmt.Fprintf(&b, "\nAPI call latency SLO missed by %d of %d verb/resource series: %s.\n", len(missed), len(r.APISeries), strings.Join(missed, "; "))
	}
	if len(unknown) > 0 {
		fmt.Fprintf(&b, "\nNot known (p99 beyond the histograms' last bucket, the SLO further still): %s.\n", strings.Join(unknown, "; "))
	}

	b.WriteString("\n## Memory (RSS)\n\n| process | peak MB | steady MB |\n|---|---:|---:|\n")
	for _, m := range r.Servers {
		name := m.Name
		if m.Leader {
			name += " (leader at the end)"
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f |\n", name, m.PeakMB, m.SteadyMB)
	}
	if r.Hollow != nil {
		fmt.Fprintf(&b, "| %s (%d nodes, not the control plane) | %.0f | %.0f |\n", r.Hollow.Name, r.Nodes, r.Hollow.PeakMB, r.Hollow.SteadyMB)
	}
	b.WriteString("\nPeak is VmHWM; steady the mean VmRSS while the converged cluster settles (the last reading when it did not converge).\n")
	return b.String()
}

// WriteTable prints summary.md.
func (r *ScaleResult) WriteTable(w io.Writer) error {
	_, err := io.WriteString(w, r.Markdown())
	return err
}

// WriteFiles writes result.json and summary.md under dir.
func (r *ScaleResult) WriteFiles(dir string) error {
	return writeResultAndSummary(dir, r, r.Markdown())
}

// secondsSince is a duration in seconds for the report.
func secondsSince(t0, t time.Time) float64 { return t.Sub(t0).Seconds() }
