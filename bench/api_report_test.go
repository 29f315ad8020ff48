package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestAPIRowsPercentilesAndNulls(t *testing.T) {
	lat := make([]time.Duration, 0, 1000)
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(lat, 3, 2*time.Second)
	create := apiRow("skiff", "small", "cm-create", 64, s, true)
	if *create.P50 != 500 || *create.P99 != 990 || *create.P999 != 999 || *create.OpsPerSec != 500 || create.Errors != 3 {
		t.Fatalf("cm-create row: p50 %v p99 %v p999 %v ops/s %v errors %d", *create.P50, *create.P99, *create.P999, *create.OpsPerSec, create.Errors)
	}
	list := apiRow("skiff", "small", "list-pods", 1, Summarize([]time.Duration{200 * time.Millisecond}, 0, time.Second), false)
	if list.OpsPerSec != nil || *list.P99 != 200 {
		t.Fatalf("list row: %+v", list)
	}
	dir := t.TempDir()
	rep := &APIReport{Command: "skiff bench api --peer none", Results: []APIResult{create, list,
		{System: "skiff", Step: "small", Workload: "rss", RSSMB: f64(321.4)},
		apiErrorRow("skiff", "small", "watch", 1000, os.ErrDeadlineExceeded)}}
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 4 {
		t.Fatalf("%d results", len(back.Results))
	}
	for _, k := range []string{"system", "step", "workload", "clients", "ops_per_sec", "p50_ms", "p99_ms", "p999_ms", "rss_mb"} {
		if _, ok := back.Results[1][k]; !ok {
			t.Errorf("result.json row lacks %q (a null is required where a figure does not apply)", k)
		}
	}
	if back.Results[1]["ops_per_sec"] != nil || back.Results[2]["rss_mb"] != 321.4 || back.Results[3]["error"] == nil {
		t.Errorf("rows: %v", back.Results)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	if !strings.Contains(string(md), "| skiff | small | cm-create | 64 |  | 500 | 500.0 | 990.0 | 999.0 | - |") {
		t.Errorf("summary.md:\n%s", md)
	}
}

func TestProcMemOfSelf(t *testing.T) {
	rss, peak, err := summedMemMB([]int{os.Getpid()})
	if err != nil || rss <= 0 || peak < rss {
		t.Fatalf("rss %v peak %v err %v", rss, peak, err)
	}
}

// row builds a result with the given figures (negative: null).
func row(system, step, workload string, clients int, variant string, ops, p50, p99, rss float64) APIResult {
	opt := func(v float64) *float64 {
		if v < 0 {
			return nil
		}
		return f64(v)
	}
	return APIResult{System: system, Step: step, Workload: workload, Clients: clients, Variant: variant,
		OpsPerSec: opt(ops), P50: opt(p50), P99: opt(p99), P999: opt(p99), RSSMB: opt(rss)}
}

func TestAPIRatiosPairRowsAcrossSystems(t *testing.T) {
	rep := &APIReport{Results: []APIResult{
		row(APISkiff, "small", "cm-create", 64, "", 900, 20, 80, -1),
		row(APISkiff, "small", "cm-create", 64, "paced 500/s", 480, 10, 40, -1),
		row(APISkiff, "small", "list-pods", 1, "", -1, 150, 300, -1),
		row(APISkiff, "small", "schedule-bound", 1, "hollow nodes", 40, 5000, 9000, -1),
		row(APISkiff, "small", "schedule-bound", 1, "kwok nodes", 60, 4000, 8000, -1),
		row(APISkiff, "small", "rss", 0, "", -1, -1, -1, 300),
		apiErrorRow(APISkiff, "small", "watch", 1000, os.ErrDeadlineExceeded),
		row(APIUpstream, "small", "cm-create", 64, "", 450, 40, 160, -1),
		row(APIUpstream, "small", "cm-create", 64, "paced 500/s", 500, 5, 10, -1),
		row(APIUpstream, "small", "list-pods", 1, "", -1, 0, 200, -1),
		row(APIUpstream, "small", "schedule-bound", 1, "kwok nodes", 30, 2000, 4000, -1),
		row(APIUpstream, "small", "rss", 0, "", -1, -1, -1, 600),
		row(APIUpstream, "small", "watch", 1000, "", -1, 5, 50, -1),
		row(APIUpstream, "small", "cm-get", 1, "", 2000, 0.5, 1, -1), // no skiff row
	}}
	rep.ComputeRatios()
	want := []struct {
		i                  int
		ops, p50, p99, rss *float64
	}{
		{0, f64(2), f64(0.5), f64(0.5), nil},
		{1, f64(0.96), f64(2), f64(4), nil},
		{2, nil, nil, f64(1.5), nil},                  // upstream p50 0: no ratio from a zero
		{3, f64(40.0 / 30), f64(2.5), f64(2.25), nil}, // hollow against the only upstream row: kwok
		{4, f64(2), f64(2), f64(2), nil},              // kwok against kwok
		{5, nil, nil, nil, f64(0.5)},
	}
	eq := func(a, b *float64) bool {
		if a == nil || b == nil {
			return a == b
		}
		d := *a - *b
		return d < 1e-9 && d > -1e-9
	}
	for _, w := range want {
		r := rep.Results[w.i].Ratio
		if r == nil {
			t.Fatalf("row %d (%s %s): no ratio", w.i, rep.Results[w.i].Workload, rep.Results[w.i].Variant)
		}
		if !eq(r.OpsPerSec, w.ops) || !eq(r.P50, w.p50) || !eq(r.P99, w.p99) || !eq(r.RSSMB, w.rss) {
			t.Errorf("row %d (%s %s): ratio ops %v p50 %v p99 %v rss %v", w.i, rep.Results[w.i].Workload, rep.Results[w.i].Variant,
				num(r.OpsPerSec, 3), num(r.P50, 3), num(r.P99, 3), num(r.RSSMB, 3))
		}
	}
	if rep.Results[6].Ratio != nil {
		t.Errorf("a failed row got a ratio: %+v", rep.Results[6].Ratio)
	}
	for i := 7; i < len(rep.Results); i++ {
		if rep.Results[i].Ratio != nil {
			t.Errorf("upstream row %d got a ratio", i)
		}
	}
	cmp := rep.Comparisons()
	if len(cmp) != 8 { // 7 skiff rows, and upstream's cm-get alone; upstream's watch pairs with skiff's failed one
		t.Fatalf("%d comparisons: %+v", len(cmp), cmp)
	}
	if c := cmp[3]; c.Variant != "hollow nodes vs kwok nodes" || c.Upstream == nil || c.Upstream.Variant != "kwok nodes" {
		t.Errorf("hollow line: %+v", c)
	}
	if c := cmp[7]; c.Skiff != nil || c.Upstream == nil || c.Workload != "cm-get" {
		t.Errorf("upstream-only line: %+v", c)
	}
	if got := strings.Join(cmp[0].cells(), " | "); got != "small | cm-create | 64 |  | 900 / 450 (2.00) | 20.0 / 40.0 (0.50) | 80.0 / 160.0 (0.50) | 80.0 / 160.0 (0.50) | -" {
		t.Errorf("cells: %s", got)
	}
	if got := strings.Join(cmp[6].cells(), " | "); !strings.Contains(got, "err / 50.0") {
		t.Errorf("failed row's cells: %s", got)
	}
	// A scheduling run cut short by its timeout keeps the figures of what it did, marked.
	short := row(APIUpstream, "small", "schedule-bound", 1, "kwok nodes", 20, 25, 900, -1)
	short.Error = "17929 of 30000 pods after 15m1s"
	full := row(APISkiff, "small", "schedule-bound", 1, "kwok nodes", 60, 4000, 8000, -1)
	if got := strings.Join((APIComparison{Step: "small", Workload: "schedule-bound", Skiff: &full, Upstream: &short}).cells(), " | "); got != "small | schedule-bound | 0 |  | 60 / 20* | 4000.0 / 25.0* | 8000.0 / 900.0* | 8000.0 / 900.0* | -" {
		t.Errorf("cut-short row's cells: %s", got)
	}

	dir := t.TempDir()
	rep.Command = "skiff bench api --peer k8s-reference"
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "result.json"))
	var back struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if r, ok := back.Results[0]["ratio_skiff_upstream"].(map[string]any); !ok || r["ops_per_sec"] != 2.0 {
		t.Errorf("result.json ratio of row 0: %v", back.Results[0]["ratio_skiff_upstream"])
	}
	for f, label := range map[string]string{"throughput.svg": "small cm-create x64", "latency-p99.svg": "small list-pods x1", "rss.svg": "small rss<"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !strings.HasPrefix(string(b), "<svg") || !strings.Contains(string(b), label) {
			t.Errorf("%s: %v %.80s", f, err, b)
		}
	}
}

func TestAPISLOsPerSystemAndStep(t *testing.T) {
	rep := &APIReport{Results: []APIResult{
		row(APISkiff, "100", "cm-create", 64, "", 900, 20, 800, -1),
		row(APISkiff, "100", "cm-get", 64, "", 900, 20, 1200, -1),
		row(APISkiff, "100", "list-pods", 1, "", -1, 150, 300, -1),
		row(APISkiff, "100", "watch", 1000, "", -1, 150, 99999, -1), // not an SLO row
		row(APIUpstream, "100", "cm-create", 64, "", 450, 40, 160, -1),
		row(APIUpstream, "100", "list-pods", 1, "", -1, 0, 200, -1),
		row(APIUpstream, "1000", "cm-create", 1, "", 450, 40, 160, -1),
		apiErrorRow(APIUpstream, "1000", "list-pods", 1, os.ErrDeadlineExceeded),
	}}
	rep.ComputeSLOs()
	if len(rep.SLOs) != 3 {
		t.Fatalf("%d SLO lines: %+v", len(rep.SLOs), rep.SLOs)
	}
	s := rep.SLOs[0]
	if s.SingleOK || *s.SingleP99Ms != 1200 || s.SingleWorst != "cm-get/64" || !s.ListOK || *s.ListP99Ms != 300 || !s.StepCompleted {
		t.Errorf("skiff 100: %+v", s)
	}
	if s := rep.SLOs[1]; !s.SingleOK || !s.ListOK || *s.SingleP99Ms != 160 {
		t.Errorf("upstream 100: %+v", s)
	}
	if s := rep.SLOs[2]; s.ListOK || s.ListP99Ms != nil || s.StepCompleted || !s.SingleOK {
		t.Errorf("upstream 1000 (a failed list): %+v", s)
	}
}

func TestScheduleRowFromPodTimes(t *testing.T) {
	start := time.Unix(1000, 0)
	created := map[types.UID]time.Time{}
	bound := map[types.UID]time.Time{}
	for i := 0; i < 100; i++ {
		uid := types.UID(fmt.Sprint(i))
		created[uid] = start.Add(time.Duration(i) * 10 * time.Millisecond) // pods appear over 1 s
		if i < 90 {
			bound[uid] = created[uid].Add(time.Duration(i+1) * 10 * time.Millisecond)
		}
	}
	r := scheduleRow(APISkiff, "small", "schedule-bound", "hollow nodes", 10, 100, start, created, bound, time.Minute)
	// The last pod bound (89) at 890 ms + 900 ms: 90 pods in 1.79 s from the Deployments.
	if r.Ops != 90 || *r.OpsPerSec < 50.27 || *r.OpsPerSec > 50.29 || *r.P50 != 450 || *r.P99 != 900 {
		t.Errorf("row: ops %d ops/s %v p50 %v p99 %v", r.Ops, num(r.OpsPerSec, 3), num(r.P50, 1), num(r.P99, 1))
	}
	if r.Error == "" || r.Errors != 10 || r.Nodes != 10 || r.Pods != 100 {
		t.Errorf("10 pods never bound should be an error with the figures kept: %+v", r)
	}
	none := scheduleRow(APIUpstream, "small", "schedule-running", "kwok nodes", 10, 100, start, created, nil, time.Minute)
	if none.OpsPerSec != nil || none.P99 != nil || none.Error == "" {
		t.Errorf("no pod Running: %+v", none)
	}
}

func TestAPISteps(t *testing.T) {
	o := APIOptions{Scale: "full", MaxNodes: 1000}
	o.defaults()
	steps, err := apiSteps(o)
	if err != nil || len(steps) != 2 || steps[1] != (apiStep{Name: "1000", Nodes: 1000, Pods: 30000}) || !steps[0].KwokCheck {
		t.Fatalf("full to 1000: %+v %v", steps, err)
	}
	o = APIOptions{Scale: "full", MinNodes: 5000}
	o.defaults()
	if steps, err := apiSteps(o); err != nil || len(steps) != 1 || steps[0] != (apiStep{Name: "5000", Nodes: 5000, Pods: 150000}) {
		t.Fatalf("full from 5000: %+v %v", steps, err)
	}
	o = APIOptions{}
	o.defaults()
	if steps, _ := apiSteps(o); len(steps) != 1 || steps[0] != (apiStep{Name: "small", Nodes: 100, Pods: 3000, KwokCheck: true}) {
		t.Fatalf("small: %+v", steps)
	}
	if _, err := apiSteps(APIOptions{Scale: "huge"}); err == nil {
		t.Fatal("unknown scale accepted")
	}
}

// A watch step's row is its run of median p99, and the note lists every run's p99.
func TestMedianWatchRun(t *testing.T) {
	run := func(p99ms int, started float64) watchRun {
		return watchRun{s: Summary{P50: time.Millisecond, P99: time.Duration(p99ms) * time.Millisecond}, written: started}
	}
	med, p99s := medianWatchRun([]watchRun{run(550, 93), run(1803, 88), run(611, 94)})
	if med.s.P99 != 611*time.Millisecond || med.written != 94 {
		t.Errorf("median run: p99 %v, %.0f writes/s; want the 611 ms run", med.s.P99, med.written)
	}
	if p99s != "550.0, 1803.0, 611.0" {
		t.Errorf("p99s %q", p99s)
	}
	if med, _ := medianWatchRun([]watchRun{run(200, 97)}); med.s.P99 != 200*time.Millisecond {
		t.Errorf("one run: %v", med.s.P99)
	}
	if med, p99s := medianWatchRun(nil); med.s.P99 != 0 || p99s != "" {
		t.Errorf("no runs: %v %q", med.s.P99, p99s)
	}
}
