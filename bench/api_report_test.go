package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if !strings.Contains(string(md), "| skiff | small | cm-create | 64 | 500 | 500.0 | 990.0 | 999.0 | - |") {
		t.Errorf("summary.md:\n%s", md)
	}
}

func TestProcMemOfSelf(t *testing.T) {
	rss, peak, err := summedMemMB([]int{os.Getpid()})
	if err != nil || rss <= 0 || peak < rss {
		t.Fatalf("rss %v peak %v err %v", rss, peak, err)
	}
}
