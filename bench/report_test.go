package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestPercentileIsNearestRank(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond // 1..100 ms
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one sample is every percentile", durations(7), 0.999, 7 * time.Millisecond},
		{"median of four is the second", durations(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p50 of 1..100", hundred, 0.50, 50 * time.Millisecond},
		// 0.99*100 is not exactly 99 in floating point; the rank must still be 99.
		{"p99 of 1..100", hundred, 0.99, 99 * time.Millisecond},
		{"p999 of 100 samples is the max", hundred, 0.999, 100 * time.Millisecond},
	}
	for _, c := range cases {
		if got := Percentile(c.sorted, c.q); got != c.want {
			t.Errorf("%s: Percentile(q=%v) = %v, want %v", c.name, c.q, got, c.want)
		}
	}
}

func TestSummarizeSortsAndRates(t *testing.T) {
	s := Summarize(durations(9, 1, 5, 3, 7), 2, 2*time.Second)
	if s.Ops != 5 || s.Errors != 2 || s.OpsPerSec != 2.5 {
		t.Fatalf("ops/errors/rate = %d/%d/%v, want 5/2/2.5", s.Ops, s.Errors, s.OpsPerSec)
	}
	if s.P50 != 5*time.Millisecond || s.P99 != 9*time.Millisecond || s.P999 != 9*time.Millisecond {
		t.Fatalf("percentiles %v %v %v, want 5ms 9ms 9ms", s.P50, s.P99, s.P999)
	}
}

func TestRatioNeedsBothSides(t *testing.T) {
	sk := Result{System: SystemSkiff, OpsPerSec: 300, P99: 4}
	et := Result{System: SystemEtcd, OpsPerSec: 200, P99: 8}
	ops := func(r *Result) float64 { return r.OpsPerSec }
	p99 := func(r *Result) float64 { return r.P99 }
	if v, ok := Ratio(Comparison{Skiff: &sk, Etcd: &et}, ops); !ok || v != 1.5 {
		t.Fatalf("ops ratio %v %v, want 1.5", v, ok)
	}
	if v, ok := Ratio(Comparison{Skiff: &sk, Etcd: &et}, p99); !ok || v != 0.5 {
		t.Fatalf("p99 ratio %v %v, want 0.5", v, ok)
	}
	if _, ok := Ratio(Comparison{Skiff: &sk}, ops); ok {
		t.Fatal("ratio without an etcd result")
	}
	zero := Result{System: SystemEtcd}
	if _, ok := Ratio(Comparison{Skiff: &sk, Etcd: &zero}, ops); ok {
		t.Fatal("ratio over zero")
	}
}

func sampleReport() *Report {
	return &Report{
		FsyncP50: 1.25, FsyncSamples: 1000, DurationPerWorkload: "10s",
		Results: []Result{
			NewResult(SystemSkiff, WorkloadPut, 1, Summarize(durations(2, 2, 4), 0, time.Second)),
			NewResult(SystemEtcd, WorkloadPut, 1, Summarize(durations(4, 4, 8, 8, 8, 8), 0, time.Second)),
			NewResult(SystemSkiff, WorkloadPut, 64, Summarize(durations(10), 1, time.Second)),
			NewResult(SystemEtcd, WorkloadPut, 64, Summarize(durations(10, 10), 0, time.Second)),
			NewResult(SystemSkiff, WorkloadWatch, 1, Summarize(durations(3), 0, time.Second)),
		},
	}
}

func TestComparisonsPairSystemsInOrder(t *testing.T) {
	cs := sampleReport().Comparisons()
	if len(cs) != 3 {
		t.Fatalf("%d comparisons, want 3", len(cs))
	}
	if cs[0].Workload != WorkloadPut || cs[0].Clients != 1 || cs[1].Clients != 64 || cs[2].Workload != WorkloadWatch {
		t.Fatalf("order: %+v", cs)
	}
	if cs[1].Skiff == nil || cs[1].Etcd == nil || cs[2].Etcd != nil {
		t.Fatalf("pairing: %+v", cs)
	}
}

func TestTableShowsRatiosOnSkiffRows(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "fsync") || !strings.Contains(out, "1.250 ms") {
		t.Fatalf("no fsync line:\n%s", out)
	}
	var putSkiff, watchSkiff string
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == SystemSkiff && f[1] == "1" && f[0] == WorkloadPut {
			putSkiff = line
		}
		if len(f) > 2 && f[2] == SystemSkiff && f[0] == WorkloadWatch {
			watchSkiff = line
		}
	}
	// put/1: skiff 3 ops/s, p50 2ms, p99 4ms; etcd 6 ops/s, p50 8ms, p99 8ms.
	for _, want := range []string{"0.50x", "0.25x"} {
		if !strings.Contains(putSkiff, want) {
			t.Fatalf("skiff put row %q lacks %s:\n%s", putSkiff, want, out)
		}
	}
	if f := strings.Fields(watchSkiff); len(f) < 3 || strings.Join(f[len(f)-3:], " ") != "- - -" {
		t.Fatalf("watch row without etcd should show no ratios: %q", watchSkiff)
	}
}

func TestJSONHasTheDocumentedFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	if err := sampleReport().WriteJSONFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		FsyncP50 *float64         `json:"fsync_p50_ms"`
		Results  []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.FsyncP50 == nil || *doc.FsyncP50 != 1.25 || len(doc.Results) != 5 {
		t.Fatalf("document: %s", b)
	}
	for _, k := range []string{"system", "workload", "clients", "ops_per_sec", "p50_ms", "p99_ms", "p999_ms"} {
		if _, ok := doc.Results[0][k]; !ok {
			t.Fatalf("result lacks %q: %v", k, doc.Results[0])
		}
	}
}
