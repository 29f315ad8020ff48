package cluster

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
)

// bootstrapLoop forms a new cluster the way Nomad and Consul's bootstrap_expect do: once
// this server sees BootstrapExpect servers over gossip, none of which has Raft state yet,
// every one of them bootstraps Raft with the same list (the first N by name). No server is
// special, so any of them may be the first to come back after a full stop. A server that
// sees a member with state joins through the leader's autopilot instead.
func (s *Server) bootstrapLoop(ctx context.Context) {
	if s.cfg.BootstrapExpect <= 0 || s.gsp.self.Bootstrapped {
		return
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if done := s.tryBootstrap(); done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.gsp.changes():
		case <-tick.C:
		}
	}
}

// tryBootstrap bootstraps if the time has come; it reports whether there is nothing more
// for the loop to do.
func (s *Server) tryBootstrap() bool {
	if _, leader := s.store.Leader(); leader != "" {
		s.markBootstrapped()
		return true // added to a running cluster already
	}
	var servers []Member
	for _, m := range s.gsp.members() {
		if m.Role != "server" || !m.Alive {
			continue
		}
		if m.Bootstrapped && m.Name != s.cfg.Name {
			s.log.Info("a cluster exists already; waiting to be added by its leader", "member", m.Name)
			return true
		}
		servers = append(servers, m)
	}
	if len(servers) < s.cfg.BootstrapExpect {
		s.log.Debug("waiting for servers to bootstrap", "have", len(servers), "expect", s.cfg.BootstrapExpect)
		return false
	}
	slices.SortFunc(servers, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	servers = servers[:s.cfg.BootstrapExpect]
	var conf []raftstore.Server
	for _, m := range servers {
		conf = append(conf, raftstore.Server{ID: m.Name, Address: m.RaftAddr, Voter: true})
	}
	if !slices.ContainsFunc(conf, func(sv raftstore.Server) bool { return sv.ID == s.cfg.Name }) {
		return true // the others form it; this one is added afterwards
	}
	if err := s.store.Bootstrap(conf); err != nil {
		s.log.Warn("bootstrap", "err", err)
	} else {
		s.log.Info("bootstrapped raft", "servers", len(conf))
	}
	s.markBootstrapped()
	return true
}

func (s *Server) markBootstrapped() {
	s.gsp.setSelf(func(m *Member) { m.Bootstrapped = true })
}
