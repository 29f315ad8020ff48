package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/cluster"
	"github.com/skiff-dev/skiff/raftstore"
)

func newServerCmd() *cobra.Command {
	var (
		cfg           cluster.ServerConfig
		tokenFile     string
		configFile    string
		logLevel      string
		raftHeartbeat time.Duration
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a control-plane server: Raft store, API, and (while leading) the controllers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfigFile(cmd.Flags(), configFile); err != nil {
				return err
			}
			if err := readToken(&cfg.Token, tokenFile); err != nil {
				return err
			}
			cfg.Logger = newLogger(logLevel)
			cfg.LogOutput = os.Stderr
			cfg.LeaderTasks = leaderTasks(cfg.Logger)
			if raftHeartbeat > 0 {
				cfg.Tune = func(c *raftstore.Config) {
					c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = raftHeartbeat, raftHeartbeat, raftHeartbeat*3/4
				}
			}
			s, err := cluster.NewServer(cfg)
			if err != nil {
				return err
			}
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML file whose keys are these flags' names (flags given on the command line win)")
	f.StringVar(&cfg.Name, "name", hostname(), "this server's name, unique in the cluster")
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/skiff", "data directory (raft/, tls/)")
	f.StringVar(&cfg.Token, "token", "", "the cluster's server token")
	f.StringVar(&tokenFile, "token-file", "", "file holding the server token")
	f.StringVar(&cfg.RaftAddr, "raft-addr", "0.0.0.0:7000", "address for Raft and write forwarding")
	f.StringVar(&cfg.RaftAdvertise, "raft-advertise", "", "Raft address other servers dial (default: the bound one)")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", "0.0.0.0:7001", "address for gossip membership")
	f.StringVar(&cfg.GossipAdvertise, "gossip-advertise", "", "gossip address others use")
	f.StringVar(&cfg.APIAddr, "api-addr", "0.0.0.0:6443", "address for the Kubernetes API (HTTPS)")
	f.StringVar(&cfg.APIAdvertise, "api-advertise", "", "API address clients use")
	f.StringSliceVar(&cfg.Join, "join", nil, "gossip address of any member to join (repeatable; retried until one answers)")
	f.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "form a new cluster once this many servers find each other")
	f.DurationVar(&cfg.DeadServerTimeout, "dead-server-timeout", 0, "remove a server dead this long, if quorum survives (default 2m)")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", "10.96.0.0/16", "Services' cluster IP range (the same on every server); its first address is the kubernetes Service's")
	f.IntVar(&cfg.MaxRequestsInflight, "max-requests-inflight", 400, "API reads served at once; more wait their turn, then get 429 (watches and system:masters not counted; negative: no limit)")
	f.IntVar(&cfg.MaxMutatingRequestsInflight, "max-mutating-requests-inflight", 200, "API writes served at once; more wait their turn, then get 429 (system:masters not counted; negative: no limit)")
	f.StringSliceVar(&controllersFlag, "controllers", []string{"*"}, "controllers to run: * for all, -name to disable one")
	f.DurationVar(&controllerOptions.NodeMonitorGracePeriod, "node-monitor-grace-period", 0, "how long a node may be silent before it is marked Unknown and tainted (default 40s)")
	f.DurationVar(&controllerOptions.NodeMonitorPeriod, "node-monitor-period", 0, "how often the node lifecycle controller checks node health (default 5s)")
	f.DurationVar(&controllerOptions.DefaultTolerationSeconds, "default-toleration", 0, "how long a pod without its own toleration stays on a not-ready or unreachable node (default 5m)")
	f.DurationVar(&raftHeartbeat, "raft-heartbeat-timeout", 0, "Raft heartbeat and election timeout (default 1s; the leader lease is 3/4 of it): how soon a silent leader is replaced (a killed one is replaced at once); longer rides out a machine starved of CPU")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(newServerRecoverCmd())
	return cmd
}

// applyConfigFile sets every flag named in the YAML file that was not given on the command
// line.
func applyConfigFile(fs *pflag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for k, v := range m {
		fl := fs.Lookup(k)
		if fl == nil {
			return fmt.Errorf("config %s: unknown key %q", path, k)
		}
		if fl.Changed {
			continue
		}
		vals := []any{v}
		if list, ok := v.([]any); ok {
			vals = list
		}
		for _, item := range vals {
			if err := fs.Set(k, fmt.Sprint(item)); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, k, err)
			}
		}
	}
	return nil
}

func readToken(token *string, file string) error {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		*token = strings.TrimSpace(string(b))
	}
	if *token == "" {
		return fmt.Errorf("a token is required (--token or --token-file)")
	}
	return nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func newServerRecoverCmd() *cobra.Command {
	var name, dataDir string
	var peers []string
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Rewrite a stopped server's Raft membership to the survivors after a permanent loss of quorum",
		Long: `Run on every surviving server, stopped, with the same --peers list (name=raft-address),
then start them again: they elect a leader among themselves and keep every committed entry
they hold (hashicorp/raft's RecoverCluster, Consul's peers.json).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var servers []raftstore.Server
			for _, p := range peers {
				id, addr, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--peers wants name=address, got %q", p)
				}
				servers = append(servers, raftstore.Server{ID: id, Address: addr, Voter: true})
			}
			if len(servers) == 0 {
				return fmt.Errorf("--peers is required")
			}
			err := raftstore.Recover(raftstore.Config{ID: name, Dir: filepath.Join(dataDir, "raft")}, servers)
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "recovered %s: membership is now %v\n", name, peers)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", hostname(), "this server's name")
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/skiff", "this server's data directory")
	cmd.Flags().StringSliceVar(&peers, "peers", nil, "surviving servers as name=raft-address (repeatable)")
	return cmd
}
