package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/skiff-dev/skiff/bench"
)

// newBenchChaosCmd runs the chaos benchmark: a real cluster, the register workload, faults,
// and checks that fail the command when skiff breaks a promise.
func newBenchChaosCmd() *cobra.Command {
	var (
		o      bench.ChaosOptions
		faults string
		out    string
	)
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run a 3-server cluster under load and faults; check linearizability and lost writes",
		Long: `Starts a fresh cluster (3 servers, hollow agents and --real-agents libcontainer agents) in a
temporary directory, runs the register workload (ConfigMap create, read and resourceVersion
compare-and-swap through client-go against every server), the churn workload (Deployments
created, scaled, rolled and deleted) and the pod-rate workload (bare pods at --pod-rate),
injects faults on a schedule drawn from --seed, and then checks that the history is
linearizable (porcupine), that no acknowledged write is missing, that every Deployment reaches
its desired ready replicas within --converge-bound of the last fault, that no pod was bound to
two nodes or left after its deletion, that on the real agents (their cgroups sampled every
second) no pod's container ran twice at once, ran on a node it was not bound to or ran on
after its pod's deletion, and that the cluster is healthy (one leader, every member, no lag).
Writes result.json, summary.md and timeline.svg to --out; exits non-zero when a check fails.

Every server's and agent's log is kept in --out/logs.

Fault kinds: ` + strings.Join(bench.AllFaults, ", ") + `. partition, partition-primary (the Raft
leader cut off on the minority side) and netem need --netns (root); slow-disk needs a blkio
(cgroup v1) or io (v2) controller and a real block device under --dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Exe = exe
			if o.Faults, err = bench.ParseFaults(faults); err != nil {
				return err
			}
			if o.Seed == 0 {
				o.Seed = uint64(time.Now().UnixNano())
			}
			if !cmd.Flags().Changed("real-agents") && os.Geteuid() == 0 && o.Netns {
				o.RealAgents = 1
			}
			if o.RealAgents > 0 {
				if o.TestImage, err = testImageBeside(exe, o.TestImage, "chaos"); err != nil {
					return err
				}
			}
			if o.PeerDuration == 0 {
				o.PeerDuration = o.Duration / 2
			}
			o.Progress = cmd.ErrOrStderr()
			o.LogsDir = filepath.Join(out, "logs")
			// client-go logs every broken response body through klog; the faults break
			// thousands on purpose, and the run counts them as errors instead.
			klog.SetLogger(logr.Discard())
			res, err := bench.RunChaos(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := res.WriteSummary(cmd.OutOrStdout()); err != nil {
				return err
			}
			if err := res.WriteFiles(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "chaos: wrote %s/{result.json,summary.md,timeline.svg}\n", out)
			if fl := res.Failures(); len(fl) > 0 {
				return fmt.Errorf("chaos checks failed: %s", strings.Join(fl, "; "))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.Duration, "duration", 5*time.Minute, "how long the load (and the fault schedule) runs")
	fl.Uint64Var(&o.Seed, "seed", 0, "seed of the fault schedule and targets (default: from the clock; printed)")
	fl.StringVar(&faults, "faults", "all", "comma-separated fault kinds, or all")
	fl.IntVar(&o.LeaderKills, "leader-kills", 20, "at least this many leader kills, when the duration has room")
	fl.IntVar(&o.Agents, "agents", 4, "hollow agents")
	fl.IntVar(&o.RealAgents, "real-agents", 0, "libcontainer agents beside the hollow ones, whose containers the run observes (root; default 1 as root with --netns, else 0)")
	fl.StringVar(&o.TestImage, "test-image-binary", "", "the static testimage binary the real agents serve (default: testimage beside this binary)")
	fl.BoolVar(&o.Netns, "netns", os.Geteuid() == 0, "each node in its own network namespace on a bridge (root; needed for partitions and netem)")
	fl.StringVar(&o.Peer, "peer", "", "etcd: also run the register workload and leader kills against a 3-member etcd")
	fl.DurationVar(&o.PeerDuration, "peer-duration", 0, "how long the etcd peer runs (default: half of --duration)")
	fl.StringVar(&o.Etcd, "etcd", bench.DefaultEtcd, "etcd binary")
	fl.StringVar(&o.Dir, "dir", "", "where to make the temporary cluster directory")
	fl.IntVar(&o.Clients, "clients", 3, "register clients per server")
	fl.IntVar(&o.Keys, "keys", 8, "register keys (ConfigMaps)")
	fl.StringVar(&out, "out", "chaos-out", "directory for result.json, summary.md and timeline.svg")
	fl.IntVar(&o.ChurnLanes, "churn", 2, "churn lanes: each creates, scales, rolls and deletes Deployments in turn")
	fl.Float64Var(&o.PodRate, "pod-rate", 1, "bare pods created per second (each deleted after 10s)")
	fl.IntVar(&o.SteadyPer, "steady-per-agent", 2, "replicas per agent of the steady Deployment whose pods a killed agent's must be rescheduled from")
	fl.DurationVar(&o.NodeGrace, "node-monitor-grace-period", 25*time.Second, "the servers' node monitor grace period (agents renew their lease every 10s)")
	fl.DurationVar(&o.Toleration, "pod-toleration", 2*time.Second, "the workload pods' tolerationSeconds for an unreachable or not-ready node")
	fl.DurationVar(&o.ConvergeBound, "converge-bound", 90*time.Second, "every Deployment must be at its desired ready replicas, and every deleted pod gone, this long after the last fault")
	return cmd
}
