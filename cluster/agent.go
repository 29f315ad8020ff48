package cluster

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// AgentMemberConfig is an agent's seat in the cluster's gossip.
type AgentMemberConfig struct {
	Name       string
	AgentToken string   // the gossip key derives from its agent key, as the servers' does
	BindAddr   string   // host:port for gossip
	Advertise  string   // host:port others reach this agent at (default BindAddr)
	Join       []string // gossip addresses to contact; the seeds file's are added
	SeedsFile  string   // where the servers' gossip addresses are kept across restarts
	Pool       *ServerPool
	Logger     *slog.Logger
	LogOutput  io.Writer
}

// AgentMember is an agent in gossip: it advertises the node, learns which servers are alive
// and where their APIs are, and keeps the ServerPool the agent dials through current.
type AgentMember struct {
	cfg AgentMemberConfig
	g   *gossip
}

// StartAgentMember joins gossip as an agent; it keeps retrying the seeds in the background
// until one answers, and stops when ctx ends.
func StartAgentMember(ctx context.Context, cfg AgentMemberConfig) (*AgentMember, error) {
	t, err := ParseAgentToken(cfg.AgentToken)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LogOutput == nil {
		cfg.LogOutput = io.Discard
	}
	g, err := newGossip(gossipConfig{Name: cfg.Name, BindAddr: cfg.BindAddr, AdvertiseAddr: cfg.Advertise,
		Key: gossipKey(t.AgentKey), LogOutput: cfg.LogOutput}, Member{Name: cfg.Name, Role: "agent"})
	if err != nil {
		return nil, err
	}
	a := &AgentMember{cfg: cfg, g: g}
	go a.run(ctx)
	return a, nil
}

func (a *AgentMember) run(ctx context.Context) {
	defer a.g.leave()
	joined := false
	for {
		changes := a.g.changes()
		if !joined {
			seeds := a.seeds()
			if n, err := a.g.join(seeds); err == nil && n > 0 {
				joined = true
				a.cfg.Logger.Info("joined gossip", "contacted", n)
			} else if len(seeds) == 0 {
				a.cfg.Logger.Warn("no gossip seeds: give --join; the agent fails over only among its kubeconfig's servers")
				joined = true
			}
		}
		a.refresh()
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-time.After(5 * time.Second):
		}
	}
}

// refresh passes the live servers to the pool and keeps their gossip addresses for the
// next start, so an agent restarted after its first server is gone still finds the others.
func (a *AgentMember) refresh() {
	var apis, seeds []string
	for _, m := range a.g.members() {
		if m.Role == "server" && m.Alive {
			apis = append(apis, m.APIAddr)
			seeds = append(seeds, m.GossipAddr)
		}
	}
	if a.cfg.Pool != nil {
		a.cfg.Pool.SetLive(apis)
	}
	if len(seeds) > 0 && a.cfg.SeedsFile != "" {
		slices.Sort(seeds)
		if err := writeFileAtomic(a.cfg.SeedsFile, []byte(strings.Join(seeds, "\n")+"\n")); err != nil {
			a.cfg.Logger.Warn("saving gossip seeds", "err", err)
		}
	}
}

func (a *AgentMember) seeds() []string {
	out := slices.Clone(a.cfg.Join)
	if a.cfg.SeedsFile != "" {
		if b, err := os.ReadFile(a.cfg.SeedsFile); err == nil {
			for _, s := range strings.Fields(string(b)) {
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// Members lists every member this agent knows, alive or not.
func (a *AgentMember) Members() []Member { return a.g.members() }

func writeFileAtomic(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// gossipKey is the memberlist key of a cluster, derived from its agent key so that servers
// (which derive the agent key from the server token) and agents share it.
func gossipKey(agentKey []byte) []byte { return derive(agentKey, "skiff gossip v1", 32) }
