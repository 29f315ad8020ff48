package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/bench"
)

func newBenchScaleCmd() *cobra.Command {
	var o bench.ScaleOptions
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Scale mode: a fresh three-server cluster, K hollow nodes, P pods to Running",
		Long: `Starts a fresh cluster of three server processes under --out (as skiff up) and one
process of --nodes hollow node agents (the real agent code with a runtime that only
pretends; each renews its Lease every 10 s, as the kubelet) or, with --kwok, kwok's nodes
(as upstream's in bench api), waits for every node to be Ready, then creates --pods pods (--via deployments: Deployments of 1,000 replicas created
at once; --via pods: bare pods from 32 writers) and follows them until every one is Running
as its node's agent reported it. Reports the API latency by verb during that ramp from the
servers' own request-duration histograms (/metrics, read before and after, as
clusterloader2's API responsiveness measurement), pods bound per second, the time to full
convergence, the leader changes, and each server's peak and steady RSS. A progress line
goes to stderr every --interval. When a process exits, MemAvailable falls under
--min-mem-mb, nothing moves for --stall or --timeout passes, the run stops, says why, and
still writes what it measured (then exits non-zero). Writes OUT/result.json and
OUT/summary.md and prints the summary; the servers' and hollow nodes' logs stay in
OUT/cluster-logs. Everything it starts is stopped when it ends or is interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, command, err := benchSelf()
			if err != nil {
				return fmt.Errorf("bench scale: %w", err)
			}
			o.Binary, o.Command, o.Progress = exe, command, cmd.ErrOrStderr()
			res, runErr := bench.RunScale(cmd.Context(), o)
			if res != nil {
				if err := res.WriteTable(cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "bench-scale", "directory for result.json, summary.md, and the cluster while it runs")
	f.IntVar(&o.Nodes, "nodes", 1000, fmt.Sprintf("hollow nodes (at most %d)", bench.ScaleMaxNodes))
	f.IntVar(&o.Pods, "pods", 30000, fmt.Sprintf("pods (at most %d)", bench.ScaleMaxPods))
	f.StringVar(&o.KwokDir, "kwok", "", "nodes by kwok, as upstream's in bench api: the directory of its binary and kwok-stages.yaml (the reference build's bin/, e.g. /tmp/k8s-reference/bin); default: skiff's hollow nodes")
	f.StringVar(&o.Via, "via", "deployments", "how the pods are made: deployments (1,000 replicas each, at once) or pods (directly, 32 writers)")
	f.DurationVar(&o.RaftHeartbeat, "raft-heartbeat-timeout", 0, "restart the servers with this --raft-heartbeat-timeout (default: the servers' own)")
	f.DurationVar(&o.NodesTimeout, "nodes-timeout", 0, "wait for every node to be Ready (default 5m, or 0.36s a node)")
	f.DurationVar(&o.Timeout, "timeout", 0, "from the first create to every pod Running (default 15m, or pods/50 seconds)")
	f.DurationVar(&o.Stall, "stall", 5*time.Minute, "stop when no pod is created, bound or Running for this long")
	f.DurationVar(&o.Settle, "settle", 30*time.Second, "after convergence, read the steady memory over this")
	f.DurationVar(&o.Interval, "interval", 5*time.Second, "between progress lines and samples")
	f.Float64Var(&o.MinMemMB, "min-mem-mb", 512, "stop when the machine's MemAvailable falls below this")
	return cmd
}
