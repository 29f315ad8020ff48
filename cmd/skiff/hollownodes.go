package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/cluster"
	"github.com/skiff-dev/skiff/nodeagent"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// newHollowNodesCmd runs many hollow node agents in one process, as kubemark packs hollow
// kubelets: each is the real agent code path (its own node identity from a join, Lease,
// node status, pod watch and status updates) with the hollow runtime. It is how
// `skiff bench scheduler` gets a thousand nodes on one machine.
func newHollowNodesCmd() *cobra.Command {
	var (
		count       int
		first       int
		prefix      string
		servers     []string
		tokenFile   string
		dataDir     string
		cpu, memory string
		maxPods     int
		joinWorkers int
		logLevel    string
		nice        int
	)
	cmd := &cobra.Command{
		Use:   "hollow-nodes",
		Short: "Run many hollow node agents (real agent code, simulated containers) in one process",
		Long: `Joins --count nodes named <prefix><i> with the agent token (each gets its own
system:node identity, kept under --data-dir for restarts) and runs a node agent for each with
the hollow runtime, which reports containers started without running them. Agents reach the
API through the given servers (first alive). No gossip: the servers list is the pool.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 1 || len(servers) == 0 || tokenFile == "" {
				return fmt.Errorf("hollow-nodes: give --count, --server and --token-file")
			}
			if first < 0 {
				return fmt.Errorf("hollow-nodes: --first must not be negative")
			}
			var token string
			if err := readToken(&token, tokenFile); err != nil {
				return err
			}
			capacity := map[string]resource.Quantity{}
			for k, v := range map[string]string{"cpu": cpu, "memory": memory} {
				q, err := resource.ParseQuantity(v)
				if err != nil {
					return fmt.Errorf("hollow-nodes: --%s: %w", k, err)
				}
				capacity[k] = q
			}
			log := newLogger(logLevel)
			// Hollow nodes stand in for other machines: on the control plane's own cores they
			// must not starve the servers they are there to load (kubemark runs them elsewhere).
			if nice != 0 {
				if err := reniceSelf(nice); err != nil {
					log.Warn("could not lower the process priority", "nice", nice, "err", err)
				}
			}
			// About four descriptors a node (a listener, its API connections), with room.
			wantFiles := uint64(count)*8 + 1024
			if got, err := raiseFileLimit(wantFiles); err != nil || got < wantFiles {
				log.Warn("open-file limit below what the nodes may need", "limit", got, "want", wantFiles, "err", err)
			}
			ctx := cmd.Context()
			names := make([]string, count)
			for i := range names {
				names[i] = fmt.Sprintf("%s%d", prefix, first+i)
			}
			// Join (or reuse an earlier join) with a few workers: each join is a key pair and
			// a certificate signed by a server.
			kubeconfigs := make([]string, count)
			jobs := make(chan int)
			var wg sync.WaitGroup
			errs := make([]error, count)
			for range max(1, joinWorkers) {
				wg.Go(func() {
					for i := range jobs {
						dir := filepath.Join(dataDir, names[i])
						server := servers[(first+i)%len(servers)]
						for attempt := 0; ; attempt++ {
							kubeconfigs[i], errs[i] = joinOnce(ctx, filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "gossip-seeds"), server, token, names[i])
							if errs[i] == nil || attempt == 4 || ctx.Err() != nil {
								break
							}
							time.Sleep(time.Second)
						}
					}
				})
			}
			start := time.Now()
			for i := range count {
				jobs <- i
			}
			close(jobs)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("hollow-nodes: join: %w", err)
			}
			log.Info("joined", "nodes", count, "took", time.Since(start).Round(time.Millisecond))
			agents := make([]*nodeagent.Agent, count)
			for i, name := range names {
				rc, err := cluster.RestConfig(kubeconfigs[i], "")
				if err != nil {
					return err
				}
				// Each node prefers another server (the pool tries its list in order), so the
				// nodes' load spreads over the servers as a real fleet's would.
				rotated := append(append([]string(nil), servers[(first+i)%len(servers):]...), servers[:(first+i)%len(servers)]...)
				rc = cluster.PreferProtobuf(cluster.NewServerPool(rotated).RestConfig(rc))
				client, err := kubernetes.NewForConfig(rc)
				if err != nil {
					return err
				}
				tlsCfg, authorize, err := endpointSecurity(rc.TLSClientConfig.CAData)
				if err != nil {
					return err
				}
				agents[i], err = nodeagent.New(nodeagent.Config{
					NodeName: name, Client: client, RestConfig: rc, Runtime: runtime.NewHollow(),
					DataDir: filepath.Join(dataDir, name, "agent"), NodeIP: net.IPv4(127, 0, 0, 1),
					ListenAddr: "127.0.0.1:0", TLSConfig: tlsCfg, Authorize: authorize,
					Capacity: capacity, MaxPods: maxPods, Logger: log,
				})
				if err != nil {
					return fmt.Errorf("hollow-nodes: %s: %w", name, err)
				}
			}
			runErrs := make([]error, count)
			for i, a := range agents {
				wg.Go(func() { runErrs[i] = a.Run(ctx) })
			}
			log.Info("hollow nodes running", "nodes", count)
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return errors.Join(runErrs...)
		},
	}
	f := cmd.Flags()
	f.IntVar(&count, "count", 100, "number of hollow nodes")
	f.IntVar(&first, "first", 0, "index of the first node's name, so that several processes share out one fleet")
	f.StringVar(&prefix, "prefix", "hollow-", "node name prefix; names are <prefix><index>")
	f.StringSliceVar(&servers, "server", nil, "API URL of a server (repeatable); nodes join through them in turn")
	f.StringVar(&tokenFile, "token-file", "", "file holding the agent token")
	f.StringVar(&dataDir, "data-dir", filepath.Join(os.TempDir(), "skiff-hollow"), "directory for the nodes' identities and agent state")
	f.StringVar(&cpu, "cpu", "8", "each node's cpu capacity")
	f.StringVar(&memory, "memory", "32Gi", "each node's memory capacity")
	f.IntVar(&maxPods, "max-pods", 110, "each node's pod capacity")
	f.IntVar(&joinWorkers, "join-workers", 16, "joins in flight")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	f.IntVar(&nice, "nice", 10, "nice value for the whole process (0 leaves it unchanged); the servers keep theirs")
	return cmd
}
