package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/bench"
)

// newBenchCmd groups the benchmarks; each drives real processes from outside.
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run benchmarks against real processes",
	}
	cmd.AddCommand(newBenchStoreCmd())
	cmd.AddCommand(newBenchChaosCmd())
	cmd.AddCommand(newBenchAPICmd())
	cmd.AddCommand(newBenchSchedulerCmd())
	cmd.AddCommand(newBenchScaleCmd())
	cmd.AddCommand(newBenchPodsCmd())
	cmd.AddCommand(newBenchServicesCmd())
	return cmd
}

func newBenchStoreCmd() *cobra.Command {
	var (
		o   bench.StoreOptions
		out string
	)
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Benchmark raftstore (3 store-node processes) against a 3-member etcd, side by side",
		Long: `Measures the disk's fsync latency, starts raftstore as three store-node processes and
etcd as three members on loopback, each with its own data directory, drives both with the same
workloads one system at a time (1 KiB puts with 1 and 64 clients, linearizable gets with 64
clients, put-to-watch-event delay), and prints a table with the skiff/etcd ratios.
Everything it starts is stopped, and its data removed, when it ends or is interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench store: own binary: %w", err)
			}
			o.Exe = exe
			o.Progress = cmd.ErrOrStderr()
			o.Phases.Warmup = min(2*time.Second, o.Phases.Measure/5)
			rep, err := bench.RunStore(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := rep.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "etcd %s via %s; %s measured per workload\n", rep.EtcdVersion, rep.EtcdClient, rep.DurationPerWorkload)
			if out != "" {
				if err := rep.WriteJSONFile(out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote %s\n", out)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.Phases.Measure, "duration-per-workload", 10*time.Second, "measured time of each workload on each system (a warm-up of a fifth of it, at most 2s, comes first)")
	fl.StringVar(&out, "out", "", "also write the results as JSON to this file")
	fl.StringVar(&o.Dir, "dir", "", "where to make the temporary data directory (default: the system temp dir); put it on the disk under test")
	fl.StringVar(&o.Etcd, "etcd", bench.DefaultEtcd, "etcd binary")
	fl.IntVar(&o.WatchRate, "watch-rate", 100, "puts per second in the watch-delay workload")
	fl.StringVar(&o.ProfileDir, "profile-dir", "", "serve pprof on the store nodes and save their CPU profiles of each skiff workload here")
	return cmd
}
