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
		Short: "Benchmark pod startup: 100 pods on one real agent, created to Running, and the idle agent's cost",
		Long: `Starts three servers and one libcontainer agent (root), caches the test image with one pod,
creates --pods pods at once and measures each one's time from its create call to the watch
event showing it Running (p50/p90/p99), the pods per second the agent starts, then the agent's
RSS and CPU over --idle with every pod running. Progress goes to stderr, the table to stdout.`,
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
	f.DurationVar(&o.Idle, "idle", 30*time.Second, "how long the idle agent's CPU and RSS are measured")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long the pods may take to run")
	f.StringVar(&o.TestImage, "test-image-binary", "", "the static testimage binary (default: testimage beside this binary)")
	f.StringVar(&o.Dir, "dir", "", "where the temporary cluster directory is made")
	f.StringVar(&o.ProfileDir, "profile-dir", "", "serve pprof on the agent and save its CPU, goroutine, block and mutex profiles of the burst, and its log, here")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	return cmd
}
