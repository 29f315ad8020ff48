package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/bench"
)

func newBenchPodsCmd() *cobra.Command {
	var (
		o   bench.PodsOptions
		out string
	)
	cmd := &cobra.Command{
		Use:   "pods",
		Short: "Benchmark pod startup on one real agent: a burst of 100 pods, then 100 paced pods, created to Running, and the idle agent's cost",
		Long: `Starts three servers and one libcontainer agent (root), caches the test image with one pod,
creates --pods pods at once and measures each one's time from its create call to the watch
event showing it Running (p50/p90/p99), the pods per second the agent starts, then the agent's
RSS and CPU over --idle with every pod running. Then it deletes those pods, waits until they
are gone (from the API and their cgroups from the agent), and creates --latency-pods pods one
after another at --latency-rate a second, timed the same way: startup latency as the
Kubernetes pod startup SLO measures it (clusterloader2's latency pods), where the burst
measures throughput under saturation. Progress goes to stderr, the table to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, command, err := benchSelf()
			if err != nil {
				return err
			}
			o.Exe, o.Command, o.Progress = exe, command, cmd.ErrOrStderr()
			if o.TestImage, err = testImageBeside(exe, o.TestImage, "pods"); err != nil {
				return err
			}
			res, err := bench.RunPods(cmd.Context(), o)
			if err != nil {
				return err
			}
			return writeBenchResult(cmd, res, out)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Pods, "pods", 100, "pods to create at once")
	f.IntVar(&o.LatencyPods, "latency-pods", 100, "pods created one after another at --latency-rate after the burst (0: no paced phase)")
	// 5 a second: clusterloader2's rate for its latency pods (Uniform5qps), and a fifth of the
	// 25-33 pods/s one agent reached in the burst on two busy cores, so the agent is not
	// saturated and each pod's time is its own start, not its wait behind others.
	f.Float64Var(&o.LatencyRate, "latency-rate", 5, "pods a second in the paced phase")
	f.DurationVar(&o.Idle, "idle", 30*time.Second, "how long the idle agent's CPU and RSS are measured")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long the pods may take to run")
	f.StringVar(&o.TestImage, "test-image-binary", "", "the static testimage binary (default: testimage beside this binary)")
	f.StringVar(&o.Dir, "dir", "", "where the temporary cluster directory is made")
	f.StringVar(&o.ProfileDir, "profile-dir", "", "serve pprof on the agent and save its CPU, goroutine, block and mutex profiles of the burst, and its log, here")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	return cmd
}
