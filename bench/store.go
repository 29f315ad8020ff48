package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// StoreOptions configure RunStore.
type StoreOptions struct {
	// Exe is the skiff binary; its hidden store-node command runs each raftstore node.
	Exe string
	// Etcd is the etcd binary (DefaultEtcd when empty).
	Etcd string
	// Dir is where the run's temporary data directory is made (os.TempDir() when empty). It
	// should be on the disk under test: the fsync probe and all nodes' data live there.
	Dir string
	// Phases of every workload run.
	Phases Phases
	// WatchRate is the puts per second of the watch workload.
	WatchRate int
	// ProfileDir, when set, makes the store nodes serve net/http/pprof and saves a CPU
	// profile of every node during each skiff workload's measurement there.
	ProfileDir string
	// Progress receives one line per step.
	Progress io.Writer
}

// workloadSpec is one row of the benchmark, run against each system in turn.
type workloadSpec struct {
	workload string
	clients  int
	run      func(ctx context.Context, sys system) (Summary, error)
}

// RunStore benchmarks raftstore (three store-node processes) against etcd (three members)
// with the same workloads, one system at a time, and returns the report. Every process it
// starts is stopped and its temporary directory removed before it returns, on error or
// cancellation too.
func RunStore(ctx context.Context, o StoreOptions) (*Report, error) {
	if o.Etcd == "" {
		o.Etcd = DefaultEtcd
	}
	if o.WatchRate <= 0 {
		o.WatchRate = watchRateDef
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Progress, "bench: "+format+"\n", args...) }

	root, err := os.MkdirTemp(o.Dir, "skiff-bench-store-")
	if err != nil {
		return nil, fmt.Errorf("bench: temp dir: %w", err)
	}
	defer os.RemoveAll(root) // deferred first: runs after every process is stopped
	say("data directory %s", root)

	rep := &Report{DurationPerWorkload: o.Phases.Measure.String(), EtcdClient: EtcdClientName}
	say("measuring fsync latency (4 KiB append + fsync) in %s", root)
	lat, err := MeasureFsync(ctx, root, 1000, 5*time.Second)
	if err != nil {
		return nil, err
	}
	fs := Summarize(lat, 0, 0)
	rep.FsyncP50, rep.FsyncSamples = ms(fs.P50), fs.Ops
	say("fsync p50 %.3f ms, p99 %.3f ms over %d samples", ms(fs.P50), ms(fs.P99), fs.Ops)

	if err := EnsureEtcd(ctx, o.Etcd, o.Progress); err != nil {
		return nil, err
	}
	rep.EtcdVersion = EtcdVersion(ctx, o.Etcd)

	say("starting raftstore: 3 store-node processes (%s store-node)", o.Exe)
	sk, err := startSkiff(ctx, o.Exe, filepath.Join(root, "skiff"), 3, o.ProfileDir != "")
	if err != nil {
		return nil, err
	}
	defer sk.stop()
	say("raftstore ready, leader %s", leaderName(ctx, sk))

	say("starting etcd %s: 3 members (%s), client %s", rep.EtcdVersion, o.Etcd, EtcdClientName)
	et, err := startEtcd(ctx, o.Etcd, filepath.Join(root, "etcd"), 3)
	if err != nil {
		return nil, err
	}
	defer et.stop()
	say("etcd ready, leader %s", leaderName(ctx, et))

	specs := []workloadSpec{
		{WorkloadPut, 1, func(ctx context.Context, s system) (Summary, error) { return runPut(ctx, s, 1, o.Phases) }},
		{WorkloadPut, 64, func(ctx context.Context, s system) (Summary, error) { return runPut(ctx, s, 64, o.Phases) }},
		{WorkloadGet, 64, func(ctx context.Context, s system) (Summary, error) { return runGet(ctx, s, 64, o.Phases) }},
		{WorkloadWatch, 1, func(ctx context.Context, s system) (Summary, error) { return runWatch(ctx, s, o.WatchRate, o.Phases) }},
	}
	type target struct {
		sys   named
		procs procs
	}
	targets := []target{{sk, sk.procs}, {et, et.procs}}
	for _, sp := range specs {
		for _, t := range targets {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			what := fmt.Sprintf("%s, %d client(s), %s", sp.workload, sp.clients, t.sys.Name())
			if sp.workload == WorkloadWatch {
				l, err := t.sys.Leader(ctx)
				if err != nil {
					return nil, err
				}
				what = fmt.Sprintf("watch delay (writer on leader %s, watcher on follower %s, %d puts/s), %s",
					t.sys.memberName(l), t.sys.memberName((l+1)%t.sys.Members()), o.WatchRate, t.sys.Name())
			}
			say("running %s: %v warm-up + %v measured", what, o.Phases.Warmup, o.Phases.Measure)
			var waitProfiles func()
			if t.sys == named(sk) && o.ProfileDir != "" {
				waitProfiles = sk.profile(ctx, o.ProfileDir, fmt.Sprintf("%s-%d", sp.workload, sp.clients), o.Phases, o.Progress)
			}
			s, err := sp.run(ctx, t.sys)
			if waitProfiles != nil {
				waitProfiles()
			}
			if err != nil {
				return nil, fmt.Errorf("bench: %s: %w", what, err)
			}
			if err := t.procs.checkAlive(); err != nil {
				return nil, err
			}
			r := NewResult(t.sys.Name(), sp.workload, sp.clients, s)
			say("  %.0f ops/s, p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, %d errors", r.OpsPerSec, r.P50, r.P99, r.P999, r.Errors)
			rep.Results = append(rep.Results, r)
		}
	}
	say("stopping clusters and removing %s", root)
	return rep, nil
}

// named is a system whose members have names, for progress output.
type named interface {
	system
	memberName(i int) string
}

func leaderName(ctx context.Context, s named) string {
	l, err := s.Leader(ctx)
	if err != nil {
		return "unknown"
	}
	return s.memberName(l)
}
