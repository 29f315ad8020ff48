package raftstore

import "github.com/prometheus/client_golang/prometheus"

// metrics are the store's Prometheus collectors. They belong to the Store (no package-level
// state); the apiserver registers them on its /metrics registry via Collectors.
type metrics struct {
	applyLatency  prometheus.Histogram
	batchSize     prometheus.Histogram
	leaderChanges prometheus.Counter
	watchers      prometheus.Gauge
	gauges        []prometheus.Collector
}

func newMetrics(s *Store) *metrics {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "raftstore", Name: name, Help: help}, f)
	}
	m := &metrics{
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "skiff", Subsystem: "raftstore", Name: "apply_duration_seconds",
			Help:    "Time from proposing a write to its result, on the node that received it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "skiff", Subsystem: "raftstore", Name: "apply_batch_entries",
			Help:    "Entries applied to the state machine per batch (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "skiff", Subsystem: "raftstore", Name: "leader_changes_total",
			Help: "Times this node gained or lost leadership.",
		}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "skiff", Subsystem: "raftstore", Name: "watchers",
			Help: "Open watchers on this node.",
		}),
	}
	read := func(f func(*fsm) float64) func() float64 {
		return func() float64 {
			s.fsm.mu.RLock()
			defer s.fsm.mu.RUnlock()
			return f(s.fsm)
		}
	}
	m.gauges = []prometheus.Collector{
		gauge("history_events", "Events held in the watch history.", read(func(f *fsm) float64 { return float64(f.hist.len()) })),
		gauge("history_bytes", "Bytes of keys and values held by the watch history's events.", read(func(f *fsm) float64 { return float64(f.hist.bytes) })),
		gauge("keys", "Keys in the state machine.", read(func(f *fsm) float64 { return float64(f.tree.Len()) })),
		gauge("bytes", "Bytes of keys and values in the state machine.", read(func(f *fsm) float64 { return float64(f.bytes) })),
		gauge("revision", "Newest applied store revision.", read(func(f *fsm) float64 { return float64(f.rev) })),
		gauge("raft_term", "Current Raft term.", func() float64 { return float64(s.raft.CurrentTerm()) }),
		gauge("raft_commit_index", "Raft commit index.", func() float64 { return float64(s.raft.CommitIndex()) }),
		gauge("raft_last_index", "Last Raft log index on this node.", func() float64 { return float64(s.raft.LastIndex()) }),
		gauge("applied_index", "Raft index of the last entry applied to the state machine.", read(func(f *fsm) float64 { return float64(f.applied) })),
		gauge("is_leader", "1 while this node leads.", func() float64 {
			if s.IsLeader() {
				return 1
			}
			return 0
		}),
	}
	return m
}

// Collectors returns the store's Prometheus collectors (none with NoMetrics).
func (s *Store) Collectors() []prometheus.Collector {
	if s.metrics == nil {
		return nil
	}
	m := s.metrics
	return append([]prometheus.Collector{m.applyLatency, m.batchSize, m.leaderChanges, m.watchers}, m.gauges...)
}
