package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/cluster"
)

func defaultDir() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".skiff", "dev")
}

func newUpCmd() *cobra.Command {
	cfg := cluster.UpConfig{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local cluster: three servers and one agent on this machine",
		Long: `Starts server and agent processes on this machine, each with its own data dir, ports and
log under --dir, and returns once the cluster is healthy and the agents' nodes are Ready.
Writes DIR/kubeconfig (a context per server) and DIR/cluster.json (every process's pid,
addresses, data dir and log). Run again on the same dir to restart that cluster with its data.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Progress = cmd.ErrOrStderr()
			lc, err := cluster.Up(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nskiff is up: %d processes, state in %s\n\n", len(lc.Processes), lc.Dir)
			fmt.Fprintf(cmd.OutOrStdout(), "  export KUBECONFIG=%s\n  kubectl get nodes\n\n", lc.Kubeconfig)
			fmt.Fprintf(cmd.OutOrStdout(), "Contexts skiff-1..%d reach each server. Stop it with: skiff down --dir %s\n", cfg.Servers, lc.Dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", defaultDir(), "directory for the cluster's data, logs and kubeconfig")
	f.IntVar(&cfg.Servers, "servers", 3, "number of servers")
	f.IntVar(&cfg.Agents, "agents", 1, "number of agents")
	f.StringVar(&cfg.Runtime, "runtime", "libcontainer", "agents' runtime: libcontainer or hollow")
	f.StringVar(&cfg.TestImageBinary, "test-image-binary", "", "static testimage binary stored on every agent as skiff.local/testimage:latest (make run builds bin/testimage)")
	f.BoolVar(&cfg.Netns, "netns", false, "put each node in its own network namespace on a bridge, with its own address (root)")
	f.DurationVar(&cfg.Timeout, "timeout", 0, "how long to wait for the cluster to be healthy (default 2m)")
	return cmd
}

func newDownCmd() *cobra.Command {
	var dir string
	var purge bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop a local cluster started by skiff up",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cluster.Down(dir, purge, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir(), "the cluster's directory")
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove the directory, its data and anything mounted under it")
	return cmd
}
