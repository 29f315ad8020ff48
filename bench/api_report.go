package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Systems of `skiff bench api`.
const (
	APISkiff    = "skiff"
	APIUpstream = "upstream"
)

// APIResult is one measured row of `skiff bench api`, as issue 10 names the fields.
// Figures that do not apply to a row are null; a row that could not run has Error.
type APIResult struct {
	System    string   `json:"system"`   // "skiff" or "upstream"
	Step      string   `json:"step"`     // "small", or a node count of a --scale full step
	Workload  string   `json:"workload"` // cm-create, cm-get, ..., list-pods, watch, schedule-bound, rss
	Clients   int      `json:"clients"`
	OpsPerSec *float64 `json:"ops_per_sec"`
	P50       *float64 `json:"p50_ms"`
	P99       *float64 `json:"p99_ms"`
	P999      *float64 `json:"p999_ms"`
	RSSMB     *float64 `json:"rss_mb"`
	// Variant tells apart rows of one workload and client count measured differently
	// ("paced 500/s", "hollow nodes", "kwok nodes"); rows are compared across systems by
	// step, workload, clients and variant.
	Variant string `json:"variant,omitempty"`
	Nodes   int    `json:"nodes,omitempty"` // simulated nodes of a schedule row
	Pods    int    `json:"pods,omitempty"`  // pods asked for in a schedule row
	Ops     int    `json:"ops,omitempty"`
	Errors  int    `json:"errors,omitempty"`
	Note    string `json:"note,omitempty"` // e.g. watchers and write rate, steady RSS
	Error   string `json:"error,omitempty"`
	// Ratio is skiff's figure over upstream's for the matching upstream row (skiff rows only).
	Ratio *APIRatio `json:"ratio_skiff_upstream,omitempty"`
}

// APIRatio holds skiff/upstream per figure; null where either side has no figure.
type APIRatio struct {
	OpsPerSec *float64 `json:"ops_per_sec"`
	P50       *float64 `json:"p50_ms"`
	P99       *float64 `json:"p99_ms"`
	P999      *float64 `json:"p999_ms"`
	RSSMB     *float64 `json:"rss_mb"`
}

func f64(v float64) *float64 { return &v }

// apiRow labels a Summary; withRate says whether ops/s means something for the workload
// (not for a list's per-list latency or a watch's delays).
func apiRow(system, step, workload string, clients int, s Summary, withRate bool) APIResult {
	r := APIResult{System: system, Step: step, Workload: workload, Clients: clients,
		P50: f64(ms(s.P50)), P99: f64(ms(s.P99)), P999: f64(ms(s.P999)), Ops: s.Ops, Errors: s.Errors}
	if withRate {
		r.OpsPerSec = f64(s.OpsPerSec)
	}
	return r
}

func apiErrorRow(system, step, workload string, clients int, err error) APIResult {
	return APIResult{System: system, Step: step, Workload: workload, Clients: clients, Error: err.Error()}
}

// Machine describes where and when a report was measured.
type Machine struct {
	Date       string     `json:"date"` // UTC, RFC 3339
	Cores      int        `json:"cores"`
	MemTotalMB float64    `json:"mem_total_mb"`
	LoadStart  [3]float64 `json:"load_avg_start"` // 1, 5, 15 minutes
	LoadEnd    [3]float64 `json:"load_avg_end"`
}

// APISLO is one system's step against the Kubernetes API SLOs: p99 of single-object calls
// under 1 s, of lists under 30 s (the worst row of each kind).
type APISLO struct {
	System        string   `json:"system"`
	Step          string   `json:"step"`
	SingleP99Ms   *float64 `json:"single_object_p99_ms"`
	SingleWorst   string   `json:"single_object_worst,omitempty"`
	SingleOK      bool     `json:"single_object_within_1s"`
	ListP99Ms     *float64 `json:"list_p99_ms"`
	ListWorst     string   `json:"list_worst,omitempty"`
	ListOK        bool     `json:"list_within_30s"`
	StepCompleted bool     `json:"step_completed"` // no row of the step has an error
}

// APIReport is DIR/result.json.
type APIReport struct {
	Command string      `json:"command"`
	Machine Machine     `json:"machine"`
	Results []APIResult `json:"results"`
	SLOs    []APISLO    `json:"slos,omitempty"`
	// Stopped says why a system's steps ended early (a process fell over, memory ran out).
	Stopped []string `json:"stopped,omitempty"`
}

// APIComparison is one line of the side-by-side table.
type APIComparison struct {
	Step, Workload, Variant string
	Clients                 int
	Skiff, Upstream         *APIResult
}

func (r *APIResult) key(withVariant bool) string {
	k := fmt.Sprintf("%s|%s|%d", r.Step, r.Workload, r.Clients)
	if withVariant {
		k += "|" + r.Variant
	}
	return k
}

// Comparisons pairs every skiff row with its upstream row: the one of the same step,
// workload, clients and variant or, failing that, the only upstream row of the same step,
// workload and clients (skiff's hollow nodes against upstream's kwok nodes). Upstream rows
// that no skiff row matched get a line of their own. Order: as the rows first appear.
func (r *APIReport) Comparisons() []APIComparison {
	exact := map[string]*APIResult{}
	loose := map[string][]*APIResult{}
	for i := range r.Results {
		u := &r.Results[i]
		if u.System != APIUpstream {
			continue
		}
		exact[u.key(true)] = u
		loose[u.key(false)] = append(loose[u.key(false)], u)
	}
	used := map[*APIResult]bool{}
	var out []APIComparison
	for i := range r.Results {
		s := &r.Results[i]
		if s.System != APISkiff {
			continue
		}
		c := APIComparison{Step: s.Step, Workload: s.Workload, Variant: s.Variant, Clients: s.Clients, Skiff: s}
		if u := exact[s.key(true)]; u != nil {
			c.Upstream = u
		} else if us := loose[s.key(false)]; len(us) == 1 {
			c.Upstream = us[0]
			if us[0].Variant != s.Variant {
				c.Variant = strings.TrimSpace(s.Variant + " vs " + us[0].Variant)
			}
		}
		if c.Upstream != nil {
			used[c.Upstream] = true
		}
		out = append(out, c)
	}
	for i := range r.Results {
		u := &r.Results[i]
		if u.System == APIUpstream && !used[u] {
			out = append(out, APIComparison{Step: u.Step, Workload: u.Workload, Variant: u.Variant, Clients: u.Clients, Upstream: u})
		}
	}
	return out
}

// ratio is a/b when both are figures and b is not zero.
func ratio(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	return f64(*a / *b)
}

// ComputeRatios sets Ratio on every skiff row that has an upstream counterpart; rows with
// an error on either side get none (a ratio made from a failed run would mean nothing).
func (r *APIReport) ComputeRatios() {
	for i := range r.Results {
		r.Results[i].Ratio = nil
	}
	for _, c := range r.Comparisons() {
		s, u := c.Skiff, c.Upstream
		if s == nil || u == nil || s.Error != "" || u.Error != "" {
			continue
		}
		s.Ratio = &APIRatio{OpsPerSec: ratio(s.OpsPerSec, u.OpsPerSec), P50: ratio(s.P50, u.P50),
			P99: ratio(s.P99, u.P99), P999: ratio(s.P999, u.P999), RSSMB: ratio(s.RSSMB, u.RSSMB)}
	}
}

// singleObject and listWorkloads are the rows the Kubernetes API SLOs speak of.
var (
	singleObject  = map[string]bool{"cm-create": true, "cm-get": true, "cm-update": true, "cm-delete": true}
	listWorkloads = map[string]bool{"list-pods": true, "list-pods-rv0": true, "list-pods-paged": true}
)

// ComputeSLOs sets SLOs: per system and step, the worst p99 of single-object calls against
// 1 s and of lists against 30 s. A row with an error fails its SLO.
func (r *APIReport) ComputeSLOs() {
	r.SLOs = nil
	index := map[string]int{}
	for i := range r.Results {
		row := &r.Results[i]
		k := row.System + "|" + row.Step
		j, ok := index[k]
		if !ok {
			j = len(r.SLOs)
			index[k] = j
			r.SLOs = append(r.SLOs, APISLO{System: row.System, Step: row.Step, SingleOK: true, ListOK: true, StepCompleted: true})
		}
		s := &r.SLOs[j]
		if row.Error != "" {
			s.StepCompleted = false
		}
		worst := func(p99 **float64, name *string, ok *bool, limit float64) {
			if row.Error != "" {
				*ok = false
				return
			}
			if row.P99 == nil {
				return
			}
			if *p99 == nil || *row.P99 > **p99 {
				*p99, *name = f64(*row.P99), fmt.Sprintf("%s/%d", row.Workload, row.Clients)
			}
			if *row.P99 > limit {
				*ok = false
			}
		}
		switch {
		case singleObject[row.Workload]:
			worst(&s.SingleP99Ms, &s.SingleWorst, &s.SingleOK, 1000)
		case listWorkloads[row.Workload]:
			worst(&s.ListP99Ms, &s.ListWorst, &s.ListOK, 30000)
		}
	}
}

// WriteFiles computes the ratios and SLOs and writes result.json, summary.md and the SVG
// charts into dir.
func (r *APIReport) WriteFiles(dir string) error {
	r.ComputeRatios()
	r.ComputeSLOs()
	if err := writeResultAndSummary(dir, r, r.Markdown()); err != nil {
		return err
	}
	return r.writeCharts(dir)
}

// Markdown is summary.md: the side-by-side table with ratios, the SLOs, every row.
func (r *APIReport) Markdown() string {
	var md strings.Builder
	fmt.Fprintf(&md, "# skiff bench api\n\n`%s`\n\n", r.Command)
	m := r.Machine
	fmt.Fprintf(&md, "%s; %d cores, %.0f MB memory; load average %.1f %.1f %.1f at the start, %.1f %.1f %.1f at the end.\n\n",
		m.Date, m.Cores, m.MemTotalMB, m.LoadStart[0], m.LoadStart[1], m.LoadStart[2], m.LoadEnd[0], m.LoadEnd[1], m.LoadEnd[2])
	md.WriteString("## skiff / upstream (ratio skiff/upstream)\n\n")
	md.WriteString("| step | workload | clients | variant | ops/s | p50 ms | p99 ms | p99.9 ms | RSS MB |\n")
	md.WriteString("|---|---|---:|---|---:|---:|---:|---:|---:|\n")
	for _, c := range r.Comparisons() {
		fmt.Fprintf(&md, "| %s |\n", strings.Join(c.cells(), " | "))
	}
	md.WriteString("\n\\* cut short (see the row's error below): the figures of what the run did; no ratio.\n")
	if len(r.SLOs) > 0 {
		md.WriteString("\n## Kubernetes API SLOs per step (p99: single object < 1 s, list < 30 s)\n\n")
		md.WriteString("| system | step | single-object p99 ms (worst) | within | list p99 ms (worst) | within | every row ran |\n")
		md.WriteString("|---|---|---:|---|---:|---|---|\n")
		yes := func(b bool) string {
			if b {
				return "yes"
			}
			return "no"
		}
		for _, s := range r.SLOs {
			fmt.Fprintf(&md, "| %s | %s | %s (%s) | %s | %s (%s) | %s | %s |\n", s.System, s.Step,
				num(s.SingleP99Ms, 1), s.SingleWorst, yes(s.SingleOK), num(s.ListP99Ms, 1), s.ListWorst, yes(s.ListOK), yes(s.StepCompleted))
		}
	}
	if len(r.Stopped) > 0 {
		md.WriteString("\n## Stopped early\n\n")
		for _, s := range r.Stopped {
			fmt.Fprintf(&md, "- %s\n", s)
		}
	}
	md.WriteString("\n## Every row\n\n")
	md.WriteString("| system | step | workload | clients | variant | ops/s | p50 ms | p99 ms | p99.9 ms | RSS MB | note |\n")
	md.WriteString("|---|---|---|---:|---|---:|---:|---:|---:|---:|---|\n")
	for _, row := range r.Results {
		fmt.Fprintf(&md, "| %s |\n", strings.Join(row.cells(), " | "))
	}
	return md.String()
}

// WriteTable prints the side-by-side table for a terminal.
func (r *APIReport) WriteTable(w io.Writer) error {
	r.ComputeRatios()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "step\tworkload\tclients\tvariant\tops/s skiff / upstream (ratio)\tp50 ms\tp99 ms\tp99.9 ms\tRSS MB\t")
	for _, c := range r.Comparisons() {
		fmt.Fprintln(tw, strings.Join(c.cells(), "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.Comparisons() {
		for _, row := range []*APIResult{c.Skiff, c.Upstream} {
			if row != nil && row.Error != "" {
				fmt.Fprintf(w, "%s %s %s: %s\n", row.System, row.Step, row.Workload, row.Error)
			}
		}
	}
	return nil
}

func num(p *float64, prec int) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, *p)
}

// cells are "skiff / upstream (ratio)" per figure; "err" for a row that failed, the figure
// with "*" for a run cut short (a scheduling run past its timeout: the pods/s it reached,
// the latencies of the pods that got there).
func (c APIComparison) cells() []string {
	pair := func(get func(*APIResult) *float64, rget func(*APIRatio) *float64, prec int) string {
		side := func(row *APIResult) string {
			switch {
			case row == nil:
				return "-"
			case row.Error != "" && get(row) != nil:
				return num(get(row), prec) + "*" // cut short: the figure of what it did
			case row.Error != "" && row.OpsPerSec == nil && row.P50 == nil:
				return "err"
			}
			return num(get(row), prec)
		}
		s, u := side(c.Skiff), side(c.Upstream)
		if s == "-" && u == "-" {
			return "-"
		}
		out := s + " / " + u
		if c.Skiff != nil && c.Skiff.Ratio != nil {
			if v := rget(c.Skiff.Ratio); v != nil {
				out += fmt.Sprintf(" (%.2f)", *v)
			}
		}
		return out
	}
	return []string{c.Step, c.Workload, fmt.Sprint(c.Clients), c.Variant,
		pair(func(r *APIResult) *float64 { return r.OpsPerSec }, func(r *APIRatio) *float64 { return r.OpsPerSec }, 0),
		pair(func(r *APIResult) *float64 { return r.P50 }, func(r *APIRatio) *float64 { return r.P50 }, 1),
		pair(func(r *APIResult) *float64 { return r.P99 }, func(r *APIRatio) *float64 { return r.P99 }, 1),
		pair(func(r *APIResult) *float64 { return r.P999 }, func(r *APIRatio) *float64 { return r.P999 }, 1),
		pair(func(r *APIResult) *float64 { return r.RSSMB }, func(r *APIRatio) *float64 { return r.RSSMB }, 0),
	}
}

func (r APIResult) cells() []string {
	note := r.Note
	if r.Error != "" {
		note = "error: " + r.Error
	}
	return []string{r.System, r.Step, r.Workload, fmt.Sprint(r.Clients), r.Variant, num(r.OpsPerSec, 0),
		num(r.P50, 1), num(r.P99, 1), num(r.P999, 1), num(r.RSSMB, 0), strings.NewReplacer("|", "/", "\n", " ").Replace(note)}
}
