package raftstore

import (
	"errors"
	"io"
	"log/slog"
	"time"
)

// Config configures one node of the store.
type Config struct {
	// ID names this node in the Raft configuration; it must be stable across restarts.
	ID string
	// Dir holds the Raft log (log/), the stable store (raft.db) and snapshots/.
	Dir string
	// Layer carries Raft and forwarding traffic. The store closes it on Close.
	Layer Layer
	// Advertise is the address peers dial to reach Layer; defaults to Layer.Addr().
	Advertise string
	// Secret is shared by all nodes; connections without it are refused.
	Secret []byte

	// Raft timing. These decide how soon a silent leader (paused, cut off) is replaced:
	// followers campaign after 1-2 heartbeat timeouts without one (heartbeats go every
	// HeartbeatTimeout/10), and a leader that cannot reach a quorum steps down after
	// LeaderLeaseTimeout. A killed leader does not wait for them: its port refuses and a
	// follower campaigns at once (failover.go). 1 s, as etcd's election timeout, rides out
	// a CPU-starved machine: with 400 ms, three servers sharing two cores with 1,000 hollow
	// nodes changed leader every few seconds and scheduling stopped.
	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 750ms
	// CommitTimeout: how long an idle leader waits before an empty append to each
	// follower. It no longer bounds how late a follower learns of a commit: the
	// transport announces each one at once (commitTransport). raft's default 50ms; the
	// 2ms that bounded the lag before cost a three-server cluster 0.19 of a core when
	// idle, against 0.03.
	CommitTimeout time.Duration // default 50ms

	// Snapshots: taken when this many entries accumulated since the last one (checked every
	// SnapshotInterval); TrailingLogs entries are kept after it so a briefly lagging follower
	// catches up from the log rather than by snapshot install.
	SnapshotThreshold uint64        // default 16384
	SnapshotInterval  time.Duration // default 30s
	TrailingLogs      uint64        // default 10240
	SnapshotRetain    int           // default 2

	// Limits on one write.
	MaxValueSize int // default 1.5 MiB, as etcd's request limit
	MaxKeySize   int // default 3 KiB

	// Watch history: at most HistoryEvents events holding at most HistoryBytes of keys and
	// values, none older than HistoryAge. The history pins every value it holds: a write
	// burst of 1 KiB ConfigMaps and pod status updates (100,000 events) kept about 45 MB
	// beside a 20 MB state on every node, doubled by the garbage collector's headroom, for
	// watches that start minutes in the past; kube-apiserver's watch cache keeps 75 s.
	HistoryEvents int           // default 100000
	HistoryBytes  int64         // default 32 MiB; negative: no byte bound
	HistoryAge    time.Duration // default 5m
	// A watcher whose consumer lets it fall more than WatchMaxLag events behind the newest is
	// closed with ErrWatcherSlow. WatchBuffer is its channel's size.
	WatchMaxLag int // default 50000
	WatchBuffer int // default 1024

	// ApplyTimeout bounds how long a write waits to be enqueued, and a read for a leader.
	ApplyTimeout time.Duration // default 10s

	Logger    *slog.Logger // default: discard
	RaftLog   io.Writer    // hashicorp/raft's own log (warnings and errors); default: discard
	NoMetrics bool         // skip building Prometheus collectors
}

// DefaultMaxValueSize is etcd's default request limit.
const DefaultMaxValueSize = 3 << 19 // 1.5 MiB

func (c *Config) setDefaults() error {
	if c.ID == "" || c.Dir == "" {
		return errors.New("raftstore: Config needs ID and Dir")
	}
	if c.Advertise == "" && c.Layer != nil {
		c.Advertise = c.Layer.Addr().String()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, time.Second)
	def(&c.ElectionTimeout, time.Second)
	def(&c.LeaderLeaseTimeout, 750*time.Millisecond)
	def(&c.CommitTimeout, 50*time.Millisecond)
	def(&c.SnapshotInterval, 30*time.Second)
	def(&c.HistoryAge, 5*time.Minute)
	def(&c.ApplyTimeout, 10*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 16384
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	defInt(&c.SnapshotRetain, 2)
	defInt(&c.MaxValueSize, DefaultMaxValueSize)
	defInt(&c.MaxKeySize, 3<<10)
	defInt(&c.HistoryEvents, 100000)
	if c.HistoryBytes == 0 {
		c.HistoryBytes = 32 << 20
	}
	defInt(&c.WatchMaxLag, 50000)
	defInt(&c.WatchBuffer, 1024)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RaftLog == nil {
		c.RaftLog = io.Discard
	}
	return nil
}
