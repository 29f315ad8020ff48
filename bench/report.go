package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
)

// Systems and workloads as they appear in reports.
const (
	SystemSkiff = "skiff"
	SystemEtcd  = "etcd"

	WorkloadPut   = "put"
	WorkloadGet   = "get"
	WorkloadWatch = "watch"
)

// Result is one workload run against one system.
type Result struct {
	System    string  `json:"system"`
	Workload  string  `json:"workload"`
	Clients   int     `json:"clients"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Ops       int     `json:"ops"`
	Errors    int     `json:"errors"`
}

// NewResult labels a Summary.
func NewResult(system, workload string, clients int, s Summary) Result {
	return Result{
		System: system, Workload: workload, Clients: clients,
		OpsPerSec: s.OpsPerSec, P50: ms(s.P50), P99: ms(s.P99), P999: ms(s.P999),
		Ops: s.Ops, Errors: s.Errors,
	}
}

// Report is the outcome of one store benchmark run; it is also the --out JSON.
type Report struct {
	FsyncP50            float64  `json:"fsync_p50_ms"`
	FsyncSamples        int      `json:"fsync_samples"`
	DurationPerWorkload string   `json:"duration_per_workload"`
	EtcdVersion         string   `json:"etcd_version"`
	EtcdClient          string   `json:"etcd_client"`
	Results             []Result `json:"results"`
}

// Comparison pairs the skiff and etcd results of one workload and client count.
type Comparison struct {
	Workload string
	Clients  int
	Skiff    *Result
	Etcd     *Result
}

// Ratio is skiff's value over etcd's, and false when either side is missing or etcd's is
// zero, so a report never shows a ratio made up from nothing.
func Ratio(c Comparison, field func(*Result) float64) (float64, bool) {
	if c.Skiff == nil || c.Etcd == nil {
		return 0, false
	}
	e := field(c.Etcd)
	if e == 0 {
		return 0, false
	}
	return field(c.Skiff) / e, true
}

// Comparisons groups results by workload and client count, in the order they first appear.
func (r *Report) Comparisons() []Comparison {
	var out []Comparison
	index := map[[2]any]int{}
	for i := range r.Results {
		res := &r.Results[i]
		k := [2]any{res.Workload, res.Clients}
		j, ok := index[k]
		if !ok {
			j = len(out)
			index[k] = j
			out = append(out, Comparison{Workload: res.Workload, Clients: res.Clients})
		}
		switch res.System {
		case SystemSkiff:
			out[j].Skiff = res
		case SystemEtcd:
			out[j].Etcd = res
		}
	}
	return out
}

// WriteTable prints the fsync line and one row per system and workload; each skiff row
// carries its ratios to etcd (ops/s: higher is better; latencies: lower is better).
func (r *Report) WriteTable(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "disk fsync (4 KiB write + fsync) p50: %.3f ms over %d samples\n", r.FsyncP50, r.FsyncSamples); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tclients\tsystem\tops/s\tp50 ms\tp99 ms\tp999 ms\terrors\tskiff/etcd ops/s\tp50\tp99\t")
	ratio := func(c Comparison, f func(*Result) float64) string {
		if v, ok := Ratio(c, f); ok {
			return fmt.Sprintf("%.2fx", v)
		}
		return "-"
	}
	for _, c := range r.Comparisons() {
		for _, res := range []*Result{c.Skiff, c.Etcd} {
			if res == nil {
				continue
			}
			ops, p50, p99 := "", "", ""
			if res == c.Skiff {
				ops = ratio(c, func(r *Result) float64 { return r.OpsPerSec })
				p50 = ratio(c, func(r *Result) float64 { return r.P50 })
				p99 = ratio(c, func(r *Result) float64 { return r.P99 })
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t\n",
				res.Workload, res.Clients, res.System, res.OpsPerSec, res.P50, res.P99, res.P999, res.Errors, ops, p50, p99)
		}
	}
	return tw.Flush()
}

// WriteJSONFile writes the report as indented JSON.
func (r *Report) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	return nil
}

// writeResultAndSummary writes a benchmark's result as dir/result.json (indented) and its
// summary as dir/summary.md, making dir if needed.
func writeResultAndSummary(dir string, result any, summary string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "summary.md"), []byte(summary), 0o644)
}

// outDir makes a benchmark's output directory and returns its absolute path.
func outDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return abs, os.MkdirAll(abs, 0o755)
}
