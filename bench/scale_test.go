package bench

import (
	"context"
	"encoding/json"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// The buckets of skiff's apiserver_request_duration_seconds (apiserver/metrics.go).
var skiffBuckets = prometheus.ExponentialBuckets(0.001, 2, 14)

func TestHistogramQuantileInterpolatesAsPrometheus(t *testing.T) {
	// 100 requests: 50 within 1 ms, 40 in (1, 2] ms, 10 in (2, 4] ms.
	h := histogram{Bounds: []float64{0.001, 0.002, 0.004}, Counts: []float64{50, 90, 100}, Count: 100}
	for _, c := range []struct{ q, want float64 }{
		{0.25, 0.0005},                     // rank 25 of the first bucket's 50, from 0
		{0.50, 0.001},                      // the first bucket's bound
		{0.70, 0.001 + 0.001*(70-50)/40.0}, // halfway into the second
		{0.99, 0.002 + 0.002*(99-90)/10.0},
	} {
		got, above := h.quantile(c.q)
		if !near(got, c.want) || above {
			t.Errorf("q %.2f: %v (above %v), want %v", c.q, got, above, c.want)
		}
	}
	// A tail past the last finite bucket gives that bound and says the truth is more.
	h = histogram{Bounds: []float64{0.001, 0.002}, Counts: []float64{90, 95}, Count: 100}
	if got, above := h.quantile(0.99); got != 0.002 || !above {
		t.Errorf("p99 beyond the last bucket: %v, above %v; want 0.002, true", got, above)
	}
	if got, above := (histogram{}).quantile(0.99); got != 0 || above {
		t.Errorf("empty: %v %v", got, above)
	}
}

func TestRampLatencyIsTheDifferenceSummedOverServers(t *testing.T) {
	b := []float64{0.1, 1}
	get := apiSeries{"get", "pods"}
	lease := apiSeries{"update", "leases"}
	start := []*apiMetrics{
		{Latency: map[apiSeries]histogram{get: {Bounds: b, Counts: []float64{10, 10}, Count: 10}}, Failed: map[apiSeries]float64{get: 1}},
		{Latency: map[apiSeries]histogram{get: {Bounds: b, Counts: []float64{100, 100}, Count: 100}}},
		nil, // did not answer: all it counted is new
	}
	end := []*apiMetrics{
		// 5 more fast gets, 5 slow ones, one more failure; a series that began meanwhile.
		{Latency: map[apiSeries]histogram{get: {Bounds: b, Counts: []float64{15, 20}, Count: 20},
			lease: {Bounds: b, Counts: []float64{3, 3}, Count: 3}}, Failed: map[apiSeries]float64{get: 2}},
		// Restarted in between (its count went down): everything it counted is new.
		{Latency: map[apiSeries]histogram{get: {Bounds: b, Counts: []float64{4, 4}, Count: 4}}},
		{Latency: map[apiSeries]histogram{get: {Bounds: b, Counts: []float64{1, 1}, Count: 1}}},
	}
	lat, failed := rampLatency(start, end)
	g := lat[get]
	if g.Count != 15 || g.Counts[0] != 10 || g.Counts[1] != 15 {
		t.Errorf("get: %+v, want 15 requests, 10 within 0.1 s", g)
	}
	if lat[lease].Count != 3 {
		t.Errorf("a series new in the ramp: %+v", lat[lease])
	}
	if failed[get] != 1 {
		t.Errorf("failed gets: %v, want 1", failed[get])
	}
	// p50 of the 15: rank 7.5 in the first bucket (10 of them, from 0 to 0.1).
	if p50, _ := g.quantile(0.5); !near(p50, 0.075) {
		t.Errorf("p50 %v, want 0.075", p50)
	}
}

// The apiserver's own collectors, scraped over HTTP as the bench does.
func TestScrapeParsesTheAPIServersExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "apiserver_request_duration_seconds", Buckets: skiffBuckets},
		[]string{"verb", "resource"})
	total := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apiserver_request_total"}, []string{"verb", "resource", "code"})
	term := prometheus.NewGauge(prometheus.GaugeOpts{Name: "skiff_raftstore_raft_term"})
	leader := prometheus.NewGauge(prometheus.GaugeOpts{Name: "skiff_raftstore_is_leader"})
	reg.MustRegister(lat, total, term, leader)
	for range 99 {
		lat.WithLabelValues("create", "pods/binding").Observe(0.003)
	}
	lat.WithLabelValues("create", "pods/binding").Observe(20) // past the last bucket
	total.WithLabelValues("create", "pods/binding", "201").Add(97)
	total.WithLabelValues("create", "pods/binding", "503").Add(2)
	total.WithLabelValues("create", "pods/binding", "429").Add(1)
	total.WithLabelValues("create", "pods/binding", "409").Add(5) // a conflict is an answer
	term.Set(7)
	leader.Set(1)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	m, err := scrapeAPIMetrics(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := apiSeries{"create", "pods/binding"}
	h := m.Latency[s]
	if h.Count != 100 || len(h.Bounds) != 14 || h.Bounds[13] != 8.192 {
		t.Fatalf("histogram %+v", h)
	}
	if m.Failed[s] != 3 || m.Term != 7 || !m.Leader {
		t.Errorf("failed %v, term %d, leader %v; want 3, 7, true", m.Failed[s], m.Term, m.Leader)
	}
	// p99 is the 99th of 100: in (2, 4] ms; p99.5 lies past 8.192 s.
	if p99, above := h.quantile(0.99); above || p99 <= 0.002 || p99 > 0.004 {
		t.Errorf("p99 %v above %v", p99, above)
	}
	if _, above := h.quantile(0.995); !above {
		t.Error("p99.5 should lie beyond the last bucket")
	}
}

func TestVerbRowsLeaveOutWhatTheSLOLeavesOut(t *testing.T) {
	b := []float64{0.5, 1, 2}
	lat := map[apiSeries]histogram{
		{"get", "pods"}:             {Bounds: b, Counts: []float64{100, 100, 100}, Count: 100},
		{"get", "nodes"}:            {Bounds: b, Counts: []float64{0, 0, 100}, Count: 100}, // p99 in (1, 2]: misses 1 s
		{"list", "pods"}:            {Bounds: b, Counts: []float64{0, 0, 10}, Count: 10},   // 2 s: within 30 s
		{"list", "nodes"}:           {Bounds: b, Counts: []float64{0, 0, 5}, Count: 10},    // past 2 s: 30 s not known
		{"get", ""}:                 {Bounds: b, Counts: []float64{0, 0, 0}, Count: 50},    // /metrics: out
		{"get", "pods/log"}:         {Bounds: b, Counts: []float64{0, 0, 0}, Count: 50},    // streaming: out
		{"watch", "pods"}:           {Bounds: b, Counts: []float64{0, 0, 0}, Count: 50},
		{"update", "leases"}:        {Bounds: b, Counts: []float64{0, 0, 0}, Count: 0}, // no requests: no row
		{"create", "pods/eviction"}: {Bounds: b, Counts: []float64{1, 1, 1}, Count: 1},
	}
	failed := map[apiSeries]float64{{"get", "pods"}: 2, {"get", ""}: 9}
	verbs := verbRows(lat, failed)
	if len(verbs) != 3 || verbs[0].Verb != "create" || verbs[1].Verb != "get" || verbs[2].Verb != "list" {
		t.Fatalf("verbs %+v", verbs)
	}
	if g := verbs[1]; g.Requests != 200 || g.Failed != 2 || g.P50Ms != 500 {
		t.Errorf("get row %+v: want 200 requests (pods and nodes), 2 failed, p50 500 ms", g)
	}
	series, met := seriesRows(lat, failed)
	if met || len(series) != 5 {
		t.Fatalf("series %+v met %v", series, met)
	}
	for _, s := range series {
		missed := s.Verb == "get" && s.Resource == "nodes"
		unknown := s.Verb == "list" && s.Resource == "nodes"
		if s.Met != (!missed && !unknown) || s.Unknown != unknown {
			t.Errorf("%s %s: met %v, unknown %v (p99 %.0f ms, SLO %.0f)", s.Verb, s.Resource, s.Met, s.Unknown, s.P99Ms, s.SLOMs)
		}
	}
	r := &ScaleResult{APISeries: series, SLOMet: met}
	md := r.Markdown()
	if !strings.Contains(md, "SLO missed by 1 of 5 verb/resource series: get nodes") || !strings.Contains(md, "Not known (p99 beyond the histograms' last bucket, the SLO further still): list nodes p99 > 2000 ms") {
		t.Errorf("summary:\n%s", md)
	}
}

func TestScaleSummarySaysWhatHappened(t *testing.T) {
	conv := 312.5
	r := &ScaleResult{Command: "skiff bench scale --nodes 100 --pods 3000", Nodes: 100, Pods: 3000, Via: "deployments", Simulator: simHollow,
		Converged: true, Phase: "done", ConvergedSeconds: &conv, Created: 3000, Bound: 3000, Running: 3000,
		Scheduling:    &SchedulerResult{PodsPerSecond: 41.2, BoundIn: 72.8, P50Ms: 900, P99Ms: 4100},
		LeaderChanges: 2,
		API:           []ScaleVerb{{Verb: "create", Requests: 9000, P50Ms: 12, P90Ms: 80, P99Ms: 8192, Above: true}},
		APISeries:     []ScaleSeries{{Verb: "create", Resource: "pods", Requests: 3000, P99Ms: 8192, Above: true, SLOMs: 1000}},
		Servers:       []ScaleMemory{{Name: "skiff-1", PeakMB: 1200, SteadyMB: 800, Leader: true}},
		Hollow:        &ScaleMemory{Name: "hollow-nodes", PeakMB: 300, SteadyMB: 250}}
	md := r.Markdown()
	for _, want := range []string{"# skiff bench scale: 100 hollow nodes, 3000 pods", "**Converged**: every pod Running after 312.5 s", "41.2 pods bound/s", "| create | 9000 | 0 | 12 | 80 | > 8192 |",
		"SLO missed by 1 of 1", "create pods p99 > 8192 ms", "| skiff-1 (leader at the end) | 1200 | 800 |", "| leader changes (Raft terms) during the ramp | 2 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}

	r.Converged, r.ConvergedSeconds, r.Phase, r.Stopped = false, nil, "ramp", "no pod was created, bound or became Running for 5m0s"
	r.Simulator, r.Hollow.Name = simKwok, simKwok
	md = r.Markdown()
	for _, want := range []string{"# skiff bench scale: 100 kwok nodes", "| kwok (100 nodes, not the control plane) |",
		"**Not converged** (stopped in phase ramp): no pod was created", "| time to full convergence | not reached |"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	dir := t.TempDir()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"converged", "stopped", "converged_seconds", "api_by_verb", "api_slo_met", "servers", "leader_changes", "scheduling"} {
		if _, ok := back[k]; !ok {
			t.Errorf("result.json lacks %q", k)
		}
	}
	if back["converged_seconds"] != nil {
		t.Errorf("converged_seconds of a run that did not converge: %v, want null", back["converged_seconds"])
	}
}

func TestScaleOptionsStayWithinKubernetesLimits(t *testing.T) {
	for _, c := range []struct {
		nodes, pods int
		via         string
		ok          bool
	}{
		{1000, 30000, "deployments", true},
		{5000, 150000, "pods", true},
		{5001, 1000, "deployments", false},
		{1000, 150001, "deployments", false},
		{10, 1101, "deployments", false}, // 110 pods a node
		{10, 10, "jobs", false},
	} {
		o := ScaleOptions{Out: "x", Binary: "skiff", Nodes: c.nodes, Pods: c.pods, Via: c.via}
		o.defaults()
		if err := o.validate(); (err == nil) != c.ok {
			t.Errorf("%d nodes, %d pods, via %s: %v", c.nodes, c.pods, c.via, err)
		}
	}
}
