package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/bench"
)

// defaultK8sReference is ../shared/k8s-reference from the repository (or the working
// directory), where the issue puts it.
func defaultK8sReference() string {
	for _, d := range []string{"../shared/k8s-reference", "/work/shared/k8s-reference"} {
		if _, err := os.Stat(filepath.Join(d, "run.sh")); err == nil {
			if abs, err := filepath.Abs(d); err == nil {
				return abs
			}
		}
	}
	return "../shared/k8s-reference"
}

func newBenchAPICmd() *cobra.Command {
	var o bench.APIOptions
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Benchmark the Kubernetes API of a fresh three-server skiff cluster through client-go",
		Long: `Starts a fresh skiff cluster of three server processes (skiff up) under --out, with
simulated nodes (one skiff hollow-nodes process, or with --skiff-nodes kwok the reference's kwok), drives it through client-go with protobuf
(ConfigMap create/get/update/delete with 1 and 64 clients, and paced at --paced-rate; LIST of
10,000 pods consistent / resourceVersion=0 / paginated by 500; watch fan-out with 100 and 1,000
watchers at 100 writes/s, each --watch-runs times; pods through Deployments, create to bound and to Running), runs kwok
(from the reference build) against it as a check, sums the servers' RSS, and stops it.
With --peer k8s-reference it then does the same against upstream Kubernetes v1.32 (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kwok nodes) from
--k8s-reference's run.sh, building it first with its build.sh if the binaries are missing
from --k8s-work/bin (minutes). --scale small is one step of --nodes nodes and --sched-pods
pods; --scale full steps through 100, 1,000 and 5,000 nodes with 30 pods per node, each
system afresh per step, and stops a system's steps when it falls over or memory runs out.
Writes OUT/result.json, OUT/summary.md (side by side, ratio skiff/upstream) and SVG charts.
--only runs some phases alone (the nodes start only with nodes or schedule); --profile
also saves CPU profiles of the bench process itself during each phase.
Every process it starts is stopped when it ends.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench api: own binary: %w", err)
			}
			o.Binary = exe
			o.Progress = cmd.ErrOrStderr()
			o.Command = "skiff bench api " + strings.Join(os.Args[3:], " ")
			rep, err := bench.RunAPI(cmd.Context(), o)
			if rep != nil {
				if werr := rep.WriteTable(cmd.OutOrStdout()); werr != nil && err == nil {
					err = werr
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "bench api: wrote %s/result.json, %s/summary.md and SVG charts\n", o.Out, o.Out)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Out, "out", "bench-api", "directory for result.json, summary.md and the clusters' data")
	fl.StringVar(&o.Peer, "peer", "none", "the system to compare with: none or k8s-reference (upstream Kubernetes)")
	fl.StringVar(&o.Scale, "scale", "small", "small (one step: --nodes, --sched-pods) or full (100, 1,000, 5,000 nodes; 30 pods per node)")
	fl.IntVar(&o.Nodes, "nodes", 100, "simulated nodes of the small step")
	fl.StringVar(&o.SkiffNodes, "skiff-nodes", "hollow", "what simulates skiff's nodes: hollow (its own hollow agents) or kwok (the reference's kwok, as for upstream; then kwok's separate check is implied)")
	fl.IntVar(&o.SchedPods, "sched-pods", 3000, "pods scheduled through Deployments in the small step")
	fl.IntVar(&o.MaxNodes, "max-nodes", 0, "--scale full: end after the step of this many nodes (0: every step)")
	fl.IntVar(&o.MinNodes, "min-nodes", 0, "--scale full: start at the first step of at least this many nodes")
	fl.DurationVar(&o.ScheduleTimeout, "schedule-timeout", 0, "bound on each scheduling run; a run cut short reports the pods/s it reached (default: 5m or pods/50 s, whichever is longer)")
	fl.DurationVar(&o.NodesTimeout, "nodes-timeout", 0, "wait for the simulated nodes to be Ready (default: 5m or 0.36 s a node, whichever is longer)")
	fl.StringVar(&o.K8sReference, "k8s-reference", defaultK8sReference(), "directory of the reference's build.sh and run.sh")
	fl.StringVar(&o.K8sWork, "k8s-work", filepath.Join(os.TempDir(), "k8s-reference"), "the reference's build WORK: binaries in its bin/")
	fl.IntVar(&o.UpstreamEtcd, "upstream-etcd-members", 1, "etcd members of the reference (1 as kubeadm's single control plane, or 3)")
	fl.StringVar(&o.ProfileDir, "profile", "", "directory for CPU profiles of skiff's servers during each phase, and their heap profiles")
	fl.DurationVar(&o.RaftHeartbeat, "raft-heartbeat-timeout", 0, "restart skiff's servers with this --raft-heartbeat-timeout (default: the servers' own 1s)")
	fl.Float64Var(&o.MinMemMB, "min-mem-mb", 512, "stop a step when the machine's MemAvailable falls below this")
	fl.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time of each ConfigMap phase and of each watch step")
	fl.IntVar(&o.Pods, "pods", 10000, "pods in the listed namespace")
	fl.IntSliceVar(&o.Watchers, "watchers", []int{100, 1000}, "watcher counts of the fan-out steps")
	fl.IntVar(&o.WatchRate, "watch-rate", 100, "writes per second during the fan-out")
	fl.IntVar(&o.PacedRate, "paced-rate", 500, "writes per second of the paced ConfigMap create row")
	fl.IntVar(&o.ListRepeats, "list-repeats", 10, "lists per list mode")
	fl.IntVar(&o.WatchRuns, "watch-runs", 3, "runs of each watch fan-out step; its row is the run of median p99")
	fl.StringSliceVar(&o.Only, "only", nil, "run just these phases of each step (nodes, cm, paced, list, watch, schedule, rss, kwok; default all), e.g. --only watch --peer none")
	return cmd
}
