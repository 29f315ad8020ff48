package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/bench"
)

func newBenchAPICmd() *cobra.Command {
	var o bench.APIOptions
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Benchmark the Kubernetes API of a fresh three-server skiff cluster through client-go",
		Long: `Starts a fresh skiff cluster of three server processes (skiff up, no agents) under
--out, drives it through client-go with protobuf (ConfigMap create/get/update/delete with 1 and 64
clients, LIST of 10,000 pods consistent / resourceVersion=0 / paginated by 500, watch fan-out
with 100 and 1,000 watchers at 100 writes/s), sums the servers' RSS, and writes
OUT/result.json and OUT/summary.md. Every process it starts is stopped when it ends.
--peer k8s-reference (upstream Kubernetes side by side) is not built yet.`,
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
				fmt.Fprintf(cmd.ErrOrStderr(), "bench api: wrote %s/result.json and %s/summary.md\n", o.Out, o.Out)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Out, "out", "bench-api", "directory for result.json, summary.md and the clusters' data")
	fl.StringVar(&o.Peer, "peer", "none", "the system to compare with: none (k8s-reference: not yet)")
	fl.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time of each ConfigMap phase and of each watch step")
	fl.IntVar(&o.Pods, "pods", 10000, "pods in the listed namespace")
	fl.IntSliceVar(&o.Watchers, "watchers", []int{100, 1000}, "watcher counts of the fan-out steps")
	fl.IntVar(&o.WatchRate, "watch-rate", 100, "writes per second during the fan-out")
	fl.IntVar(&o.PacedRate, "paced-rate", 500, "writes per second of the paced ConfigMap create row")
	fl.IntVar(&o.ListRepeats, "list-repeats", 10, "lists per list mode")
	return cmd
}
