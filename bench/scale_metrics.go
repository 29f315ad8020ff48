package bench

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The API latency of `skiff bench scale` is measured on the servers, as clusterloader2's
// API responsiveness measurement does: each server's apiserver_request_duration_seconds
// histograms are read from /metrics when the ramp starts and when it ends, and the
// percentiles come from the difference (the requests of the ramp only), summed over the
// servers, interpolated within buckets as Prometheus' histogram_quantile does.

// apiSeries names one request histogram: skiff labels by verb and resource (with
// "/subresource"); it has no scope label, unlike kube-apiserver.
type apiSeries struct {
	Verb, Resource string
}

// histogram is one cumulative Prometheus histogram: Counts[i] requests took at most
// Bounds[i] seconds; Count is all of them (the +Inf bucket).
type histogram struct {
	Bounds []float64
	Counts []float64
	Count  float64
	Sum    float64
}

// apiMetrics is what one scrape of a server's /metrics gives the scale benchmark.
type apiMetrics struct {
	Latency map[apiSeries]histogram
	// Failed counts requests answered 5xx or 429, by series.
	Failed map[apiSeries]float64
	// WatchDelivery is skiff_apiserver_watch_delivery_seconds: the server's part of watch
	// events' delay (shared stream to flush), per event and watcher.
	WatchDelivery histogram
	Term          uint64 // skiff_raftstore_raft_term
	Leader        bool   // skiff_raftstore_is_leader
}

// parseAPIMetrics reads the request histograms, failed requests and Raft term and role
// from a Prometheus text exposition.
func parseAPIMetrics(r io.Reader) (*apiMetrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	m := &apiMetrics{Latency: map[apiSeries]histogram{}, Failed: map[apiSeries]float64{}}
	if f := fams["apiserver_request_duration_seconds"]; f != nil {
		for _, s := range f.GetMetric() {
			if h := s.GetHistogram(); h != nil {
				m.Latency[seriesOf(s)] = histogramOf(h)
			}
		}
	}
	if f := fams["skiff_apiserver_watch_delivery_seconds"]; f != nil && len(f.GetMetric()) > 0 {
		m.WatchDelivery = histogramOf(f.GetMetric()[0].GetHistogram())
	}
	if f := fams["apiserver_request_total"]; f != nil {
		for _, s := range f.GetMetric() {
			code, _ := strconv.Atoi(label(s, "code"))
			if code >= 500 || code == http.StatusTooManyRequests {
				m.Failed[seriesOf(s)] += s.GetCounter().GetValue()
			}
		}
	}
	if f := fams["skiff_raftstore_raft_term"]; f != nil && len(f.GetMetric()) > 0 {
		m.Term = uint64(gaugeOrCounter(f.GetMetric()[0]))
	}
	if f := fams["skiff_raftstore_is_leader"]; f != nil && len(f.GetMetric()) > 0 {
		m.Leader = gaugeOrCounter(f.GetMetric()[0]) == 1
	}
	return m, nil
}

func histogramOf(h *dto.Histogram) histogram {
	var out histogram
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		out.Bounds = append(out.Bounds, b.GetUpperBound())
		out.Counts = append(out.Counts, float64(b.GetCumulativeCount()))
	}
	out.Count, out.Sum = float64(h.GetSampleCount()), h.GetSampleSum()
	return out
}

func label(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func seriesOf(s *dto.Metric) apiSeries {
	return apiSeries{Verb: label(s, "verb"), Resource: label(s, "resource")}
}

func gaugeOrCounter(s *dto.Metric) float64 {
	if g := s.GetGauge(); g != nil {
		return g.GetValue()
	}
	if u := s.GetUntyped(); u != nil {
		return u.GetValue()
	}
	return s.GetCounter().GetValue()
}

// sub is h minus an earlier reading of the same histogram. A server that restarted in
// between has counted afresh (a count went down): then all of h is new, as Prometheus'
// rate() takes a counter reset.
func (h histogram) sub(earlier histogram) histogram {
	if earlier.Count > h.Count || !slices.Equal(h.Bounds, earlier.Bounds) {
		return h.clone()
	}
	out := histogram{Bounds: slices.Clone(h.Bounds), Counts: make([]float64, len(h.Counts)),
		Count: h.Count - earlier.Count, Sum: h.Sum - earlier.Sum}
	for i := range h.Counts {
		out.Counts[i] = h.Counts[i] - earlier.Counts[i]
		if out.Counts[i] < 0 {
			return h.clone()
		}
	}
	return out
}

func (h histogram) clone() histogram {
	return histogram{Bounds: slices.Clone(h.Bounds), Counts: slices.Clone(h.Counts), Count: h.Count, Sum: h.Sum}
}

// add sums two histograms with the same buckets (an empty one takes the other's).
func (h histogram) add(o histogram) histogram {
	if len(h.Bounds) == 0 && h.Count == 0 {
		return o.clone()
	}
	out := h.clone()
	if !slices.Equal(h.Bounds, o.Bounds) {
		return out // not the same metric; never the case for one binary's servers
	}
	for i := range out.Counts {
		out.Counts[i] += o.Counts[i]
	}
	out.Count += o.Count
	out.Sum += o.Sum
	return out
}

// quantile is the q-quantile (0 < q < 1) of h as Prometheus' histogram_quantile estimates
// it: linear interpolation within the bucket that holds the rank, from 0 for the first
// bucket. above is true when the rank falls beyond the last finite bucket: the answer is
// then that bucket's bound, and the truth is more. No requests: 0.
func (h histogram) quantile(q float64) (seconds float64, above bool) {
	if h.Count <= 0 {
		return 0, false
	}
	rank := q * h.Count
	lower, below := 0.0, 0.0
	for i, upper := range h.Bounds {
		if h.Counts[i] >= rank {
			in := h.Counts[i] - below
			if in <= 0 {
				return upper, false
			}
			return lower + (upper-lower)*(rank-below)/in, false
		}
		lower, below = upper, h.Counts[i]
	}
	if len(h.Bounds) == 0 {
		return math.NaN(), true
	}
	return h.Bounds[len(h.Bounds)-1], true
}

// rampLatency is the ramp's requests: for each server the histograms at the end minus those
// at the start (a series absent at the start counts from zero), summed over the servers.
func rampLatency(start, end []*apiMetrics) (latency map[apiSeries]histogram, failed map[apiSeries]float64) {
	latency, failed = map[apiSeries]histogram{}, map[apiSeries]float64{}
	for i, e := range end {
		if e == nil {
			continue
		}
		var s *apiMetrics
		if i < len(start) {
			s = start[i]
		}
		for k, h := range e.Latency {
			if s != nil {
				h = h.sub(s.Latency[k])
			}
			latency[k] = latency[k].add(h)
		}
		for k, v := range e.Failed {
			if s != nil && s.Failed[k] <= v {
				v -= s.Failed[k]
			}
			failed[k] += v
		}
	}
	return latency, failed
}

// sloExcluded says whether a series is outside the API call latency SLO, as clusterloader2
// leaves out: watches and connections (long-running), non-resource paths (/metrics,
// /readyz, discovery: resource ""), and the streaming subresources.
func sloExcluded(s apiSeries) bool {
	switch s.Verb {
	case "watch", "connect", "":
		return true
	}
	if s.Resource == "" {
		return true
	}
	if _, sub, ok := strings.Cut(s.Resource, "/"); ok {
		switch sub {
		case "log", "exec", "portforward", "attach", "proxy":
			return true
		}
	}
	return false
}

// sloThreshold is the Kubernetes API call latency SLO for a verb: p99 at most 1 s for
// single-object calls; for lists 30 s (the cluster-scope bound: skiff's histograms have no
// scope label, so namespaced lists get the looser bound rather than their 5 s).
func sloThreshold(verb string) time.Duration {
	if verb == "list" {
		return 30 * time.Second
	}
	return time.Second
}
