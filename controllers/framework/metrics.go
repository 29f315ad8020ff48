package framework

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// Metrics holds the collectors of all controllers, registered once when the manager is
// built; each leadership term's queues report into the same series.
type Metrics struct {
	depth, unfinished, longest                     *prometheus.GaugeVec
	adds, retries, reconciles, reconcileErrors     *prometheus.CounterVec
	queueLatency, workDuration, reconcileDurations *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them with reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "skiff", "controller"
	name := []string{"controller"}
	buckets := prometheus.ExponentialBuckets(0.001, 4, 10)
	m := &Metrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_depth",
			Help: "Keys waiting in the controller's work queue."}, name),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_unfinished_work_seconds",
			Help: "Seconds of work in progress not yet finished."}, name),
		longest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_longest_running_processor_seconds",
			Help: "Seconds the longest running reconcile has been running."}, name),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "queue_adds_total",
			Help: "Keys added to the work queue."}, name),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "queue_retries_total",
			Help: "Keys re-added with back-off."}, name),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reconcile_total",
			Help: "Reconciles by result (success, error, requeue_after, terminal)."}, []string{"controller", "result"}),
		reconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reconcile_errors_total",
			Help: "Reconciles that returned an error."}, name),
		queueLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "queue_duration_seconds",
			Help: "Seconds a key waits in the queue before it is reconciled.", Buckets: buckets}, name),
		workDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "queue_work_duration_seconds",
			Help: "Seconds processing a key takes.", Buckets: buckets}, name),
		reconcileDurations: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "reconcile_duration_seconds",
			Help: "Latency of one Reconcile call.", Buckets: buckets}, name),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.depth, m.unfinished, m.longest, m.adds, m.retries, m.reconciles,
			m.reconcileErrors, m.queueLatency, m.workDuration, m.reconcileDurations} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register controller metrics: %w", err)
			}
		}
	}
	return m, nil
}

// For returns the metrics of one controller.
func (m *Metrics) For(controller string) *ControllerMetrics {
	return &ControllerMetrics{m: m, name: controller}
}

// ControllerMetrics are one controller's series. It is also the workqueue MetricsProvider of
// the controller's queues.
type ControllerMetrics struct {
	m    *Metrics
	name string
}

var _ workqueue.MetricsProvider = (*ControllerMetrics)(nil)

// ObserveReconcile records one Reconcile call's latency and outcome.
func (c *ControllerMetrics) ObserveReconcile(d time.Duration, result string, err error) {
	c.m.reconcileDurations.WithLabelValues(c.name).Observe(d.Seconds())
	c.m.reconciles.WithLabelValues(c.name, result).Inc()
	if err != nil {
		c.m.reconcileErrors.WithLabelValues(c.name).Inc()
	}
}

// NewDepthMetric starts the depth at zero: a queue left behind by a lost leadership term
// must not leave its keys counted.
func (c *ControllerMetrics) NewDepthMetric(string) workqueue.GaugeMetric {
	g := c.m.depth.WithLabelValues(c.name)
	g.Set(0)
	return g
}

func (c *ControllerMetrics) NewAddsMetric(string) workqueue.CounterMetric {
	return c.m.adds.WithLabelValues(c.name)
}

func (c *ControllerMetrics) NewLatencyMetric(string) workqueue.HistogramMetric {
	return c.m.queueLatency.WithLabelValues(c.name)
}

func (c *ControllerMetrics) NewWorkDurationMetric(string) workqueue.HistogramMetric {
	return c.m.workDuration.WithLabelValues(c.name)
}

func (c *ControllerMetrics) NewUnfinishedWorkSecondsMetric(string) workqueue.SettableGaugeMetric {
	return c.m.unfinished.WithLabelValues(c.name)
}

func (c *ControllerMetrics) NewLongestRunningProcessorSecondsMetric(string) workqueue.SettableGaugeMetric {
	return c.m.longest.WithLabelValues(c.name)
}

func (c *ControllerMetrics) NewRetriesMetric(string) workqueue.CounterMetric {
	return c.m.retries.WithLabelValues(c.name)
}
