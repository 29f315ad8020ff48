package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/bench"
)

func newBenchSchedulerCmd() *cobra.Command {
	var (
		o   bench.SchedulerOptions
		out string
	)
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Benchmark the scheduler: 3 servers, 1,000 hollow nodes, 10,000 pods created at once",
		Long: `Starts three servers as processes and one process running --nodes hollow node agents
(the real agent code with a runtime that only pretends), waits for every node to be Ready,
then creates --pods pods at once, through --deployments Deployments (--via deployments, the
default) or directly as bare pods from --writers writers (--via pods, as scheduler_perf's
createPods), and measures how fast they are bound, from one watch of the pods: pods bound
per second overall (first pod created to last bound), scheduler_perf's
SchedulingThroughput (the mean and percentiles of one-second samples of pods bound while
binding) and the create-to-bound latency percentiles. Progress goes to stderr, the table to stdout. Everything it starts is
stopped, and its data removed, when it ends or is interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, command, err := benchSelf()
			if err != nil {
				return fmt.Errorf("bench scheduler: %w", err)
			}
			o.Exe, o.Command, o.Progress = exe, command, cmd.ErrOrStderr()
			res, runErr := bench.RunScheduler(cmd.Context(), o)
			if res == nil {
				return runErr
			}
			// A run that timed out still reports what it measured, then fails.
			if err := writeBenchResult(cmd, res, out); err != nil {
				return err
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Servers, "servers", 3, "servers (1: no leader changes)")
	f.IntVar(&o.Nodes, "nodes", 1000, "hollow nodes")
	f.IntVar(&o.Pods, "pods", 10000, "pods to create at once")
	f.IntVar(&o.Deployments, "deployments", 10, "Deployments the pods are spread over (--via deployments)")
	f.StringVar(&o.Via, "via", "deployments", "how the pods are created: deployments (the ReplicaSet controller creates them) or pods (bare pods from --writers writers over the servers)")
	f.IntVar(&o.Writers, "writers", 32, "parallel writers of the pods with --via pods")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long every pod may take to be bound")
	f.StringVar(&o.Dir, "dir", "", "where the temporary cluster directory is made (default: the system temp dir)")
	f.StringVar(&o.ProfileDir, "profile", "", "directory for 20s CPU profiles of each server taken as the pods are created, and their heap profiles once the pods are Running")
	f.DurationVar(&o.RaftHeartbeat, "raft-heartbeat-timeout", 0, "restart the servers with this --raft-heartbeat-timeout (default: the servers' own 1s)")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	return cmd
}
