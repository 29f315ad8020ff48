package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// APIResult is one measured row of `skiff bench api`, as issue 10 names the fields.
// Figures that do not apply to a row are null; a row that could not run has Error.
type APIResult struct {
	System    string   `json:"system"`   // "skiff" or "upstream"
	Step      string   `json:"step"`     // "small", or a node count of a --scale full step
	Workload  string   `json:"workload"` // cm-create, cm-get, ..., list-pods, watch, rss
	Clients   int      `json:"clients"`
	OpsPerSec *float64 `json:"ops_per_sec"`
	P50       *float64 `json:"p50_ms"`
	P99       *float64 `json:"p99_ms"`
	P999      *float64 `json:"p999_ms"`
	RSSMB     *float64 `json:"rss_mb"`
	Ops       int      `json:"ops,omitempty"`
	Errors    int      `json:"errors,omitempty"`
	Note      string   `json:"note,omitempty"` // e.g. watchers and write rate, steady RSS
	Error     string   `json:"error,omitempty"`
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

// APIReport is DIR/result.json.
type APIReport struct {
	Command string      `json:"command"`
	Results []APIResult `json:"results"`
}

// WriteFiles writes result.json and summary.md into dir.
func (r *APIReport) WriteFiles(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# skiff bench api\n\n`%s`\n\n", r.Command)
	md.WriteString("| system | step | workload | clients | ops/s | p50 ms | p99 ms | p99.9 ms | RSS MB | note |\n")
	md.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, row := range r.Results {
		c := row.cells()
		fmt.Fprintf(&md, "| %s |\n", strings.Join(c, " | "))
	}
	return os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md.String()), 0o644)
}

// WriteTable prints the rows for a terminal.
func (r *APIReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tstep\tworkload\tclients\tops/s\tp50 ms\tp99 ms\tp99.9 ms\tRSS MB\tnote\t")
	for _, row := range r.Results {
		fmt.Fprintln(tw, strings.Join(row.cells(), "\t")+"\t")
	}
	return tw.Flush()
}

func (r APIResult) cells() []string {
	num := func(p *float64, prec int) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.*f", prec, *p)
	}
	note := r.Note
	if r.Error != "" {
		note = "error: " + r.Error
	}
	return []string{r.System, r.Step, r.Workload, fmt.Sprint(r.Clients), num(r.OpsPerSec, 0),
		num(r.P50, 1), num(r.P99, 1), num(r.P999, 1), num(r.RSSMB, 0), note}
}
