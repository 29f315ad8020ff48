// Command skiff is the single skiff binary: control node, node agent, benchmarks and
// tools, one subcommand each. It also hosts libcontainer's container init (see main).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// commands are the subcommands, one file each. None may be named "init": libcontainer
// re-executes this binary with that argument as a container's first process.
var commands = []func() *cobra.Command{
	newVersionCmd,
	newServerCmd,
	newUpCmd,
	newDownCmd,
	newStatusCmd,
	newAgentCmd,
	newHollowNodesCmd,
	newImageCmd,
	newStoreNodeCmd,
	newBenchCmd,
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "A Kubernetes-compatible orchestrator in one binary",
		SilenceUsage:  true, // a failed run prints its error, not the usage text
		SilenceErrors: true, // main prints it once
	}
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

func main() {
	// Before anything else: in a process libcontainer started as a container's init
	// (os.Args[1] == "init") this sets up the container and never returns.
	runtime.MaybeInit()

	// The first Ctrl-C or SIGTERM cancels the context so commands stop what they started;
	// after it the default action is back, so a second one kills the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "skiff:", err)
		os.Exit(1)
	}
}
