package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/bench"
)

func newBenchServicesCmd() *cobra.Command {
	var (
		o   bench.ServicesOptions
		out string
	)
	cmd := &cobra.Command{
		Use:   "services",
		Short: "Benchmark the service proxy: 1,000 Services of 10 endpoints on one real agent",
		Long: `Starts one server and one libcontainer agent in network namespaces (root, nft), a pod serving
HTTP behind a Service, and --services Services each with an EndpointSlice of --endpoints
hollow endpoints (written directly, nothing behind them). Measures the time from an
EndpointSlice update to the kernel's notification of its new rule (nft monitor in the node's
namespace), p50/p99 over --changes changes, first with --baseline Services and then with all
of them; the agent's full sync after a kill -9 and restart; and connections per second from
the node to the Service's address against the pod's IP directly. Progress goes to stderr,
the table to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, command, err := benchSelf()
			if err != nil {
				return err
			}
			o.Exe, o.Command, o.Progress = exe, command, cmd.ErrOrStderr()
			if o.TestImage, err = testImageBeside(exe, o.TestImage, "services"); err != nil {
				return err
			}
			res, err := bench.RunServices(cmd.Context(), o)
			if err != nil {
				return err
			}
			return writeBenchResult(cmd, res, out)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Services, "services", 1000, "Services, each with its own EndpointSlice")
	f.IntVar(&o.Endpoints, "endpoints", 10, "hollow endpoints per Service")
	f.IntVar(&o.Baseline, "baseline", 10, "Services the change latency is first measured with")
	f.IntVar(&o.Changes, "changes", 100, "EndpointSlice changes timed at each size")
	f.DurationVar(&o.ConnDuration, "conn-duration", 6*time.Second, "how long connections are opened to each of the Service and the pod")
	f.StringVar(&o.TestImage, "test-image-binary", "", "the static testimage binary (default: testimage beside this binary)")
	f.StringVar(&o.Dir, "dir", "", "where the temporary cluster directory is made")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	return cmd
}
