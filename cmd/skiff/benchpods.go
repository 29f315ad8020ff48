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
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Exe, o.Progress = exe, cmd.ErrOrStderr()
			o.Command = "skiff " + strings.Join(os.Args[1:], " ")
			if o.TestImage == "" {
				o.TestImage = filepath.Join(filepath.Dir(exe), "testimage")
			}
			if _, err := os.Stat(o.TestImage); err != nil {
				return fmt.Errorf("bench pods: the test image binary (make testimage, or --test-image-binary): %w", err)
			}
			res, err := bench.RunPods(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := res.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			if out != "" {
				if err := res.WriteJSONFile(out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote %s\n", out)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Pods, "pods", 100, "pods to create at once")
	f.DurationVar(&o.Idle, "idle", 30*time.Second, "how long the idle agent's CPU and RSS are measured")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long the pods may take to run")
	f.StringVar(&o.TestImage, "test-image-binary", "", "the static testimage binary (default: testimage beside this binary)")
	f.StringVar(&o.Dir, "dir", "", "where the temporary cluster directory is made")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	return cmd
}
