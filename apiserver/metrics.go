package apiserver

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus collectors, on a registry of its own (no globals);
// the caller's Registerer, when given, gets them too.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watchers *prometheus.GaugeVec
	// delivery is the server's part of a watch event's delay: from the event's arrival at
	// the node's shared stream of its resource to its flush to one watcher, once per event
	// and watcher. Against a client's delay it tells the server's share from the client's.
	delivery prometheus.Histogram
	// inflight and dropped are kube-apiserver's gauges of the requests counted against
	// --max-requests-inflight and --max-mutating-requests-inflight, and of those refused.
	inflight *prometheus.GaugeVec
	dropped  *prometheus.CounterVec
}

// collectorsProvider is implemented by *raftstore.Store.
type collectorsProvider interface {
	Collectors() []prometheus.Collector
}

func newMetrics(ext prometheus.Registerer, store Store) (*metrics, error) {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total", Help: "Requests by verb, resource and HTTP code.",
		}, []string{"verb", "resource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "apiserver_request_duration_seconds", Help: "Request latency by verb and resource (watches excluded).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"verb", "resource"}),
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_registered_watchers", Help: "Open watches by resource.",
		}, []string{"resource"}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_apiserver_watch_delivery_seconds",
			Help:    "From a watch event's arrival at the node's shared stream to its flush to a watcher, per event and watcher.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_current_inflight_requests", Help: "Requests being served that count against the in-flight limits, by kind (readOnly, mutating).",
		}, []string{"request_kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_dropped_requests_total", Help: "Requests refused with 429 after waiting for an in-flight slot, by kind (readOnly, mutating).",
		}, []string{"request_kind"}),
	}
	cs := []prometheus.Collector{m.requests, m.latency, m.watchers, m.delivery, m.inflight, m.dropped}
	if p, ok := store.(collectorsProvider); ok {
		cs = append(cs, p.Collectors()...)
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
		if ext != nil {
			if err := ext.Register(c); err != nil {
				if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(verb, resource, code string, d time.Duration) {
	m.requests.WithLabelValues(verb, resource, code).Inc()
	if verb != "watch" {
		m.latency.WithLabelValues(verb, resource).Observe(d.Seconds())
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
