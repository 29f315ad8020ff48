package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
)

// leaderLoop runs the leader-only work while this server leads: autopilot and the
// LeaderTasks (the controllers). raftstore reports leadership only after its post-election
// barrier, so the work starts with every earlier write applied; it stops the moment
// leadership is lost (STYLE.md practice 5), and a new term starts it afresh.
func (s *Server) leaderLoop(ctx context.Context) {
	changes := s.store.LeadershipChanges()
	var (
		stop    = func() {}
		term    uint64
		leading bool
	)
	defer func() { stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-changes:
			if leading && (!st.Leader || st.Term != term) {
				stop()
				leading = false
				s.log.Info("stopped leader work", "term", term)
			}
			if st.Leader && !leading {
				term, leading = st.Term, true
				stop = s.startLeaderWork(ctx, term)
				s.log.Info("leading: started leader work", "term", term)
			}
		}
	}
}

// startLeaderWork starts the leader's loops and returns a function that stops them and
// waits until they have.
func (s *Server) startLeaderWork(parent context.Context, term uint64) func() {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.autopilot(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.kubernetesServiceLoop(ctx)
	}()
	access := s.apiAccess()
	for _, task := range s.cfg.LeaderTasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A task that returns while this term lasts, failed or not, is restarted after
			// a pause, so a task that ends at once cannot spin the leader's CPU.
			for ctx.Err() == nil {
				err := task(ctx, access)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					s.log.Error("leader task failed; restarting", "err", err, "term", term)
				} else {
					s.log.Warn("leader task returned before its term ended; restarting", "term", term)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

func (s *Server) apiAccess() APIAccess {
	return APIAccess{URL: "https://" + s.apiLn.Addr().String(), CAPEM: s.keys.CAPEM, Cert: s.admin, Server: s.cfg.Name}
}

// autopilot keeps the Raft configuration in step with gossip: new servers join as
// non-voters and are promoted once caught up; a server dead longer than DeadServerTimeout
// is removed, but only if the remaining voters still make a quorum.
func (s *Server) autopilot(ctx context.Context) {
	deadSince := map[string]time.Time{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.reconcileMembers(ctx, deadSince)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.gsp.changes():
		}
	}
}

func (s *Server) reconcileMembers(ctx context.Context, deadSince map[string]time.Time) {
	conf, err := s.store.Servers()
	if err != nil {
		return
	}
	alive := map[string]Member{}
	for _, m := range s.gsp.members() {
		if m.Role == "server" && m.Alive {
			alive[m.Name] = m
		}
	}
	inConf := map[string]raftstore.Server{}
	for _, sv := range conf {
		inConf[sv.ID] = sv
	}
	for name, m := range alive {
		if _, ok := inConf[name]; !ok && m.RaftAddr != "" {
			s.log.Info("autopilot: adding server as non-voter", "peer", name)
			if err := s.store.AddNonvoter(name, m.RaftAddr); err != nil {
				s.log.Warn("autopilot: add", "peer", name, "err", err)
			}
		}
	}
	// Promote caught-up non-voters.
	st := s.store.Stats(ctx)
	for _, p := range st.Peers {
		if !p.Server.Voter && p.Err == "" && p.Lag < 64 && p.Status.AppliedIndex > 0 {
			if _, ok := alive[p.Server.ID]; ok {
				s.log.Info("autopilot: promoting caught-up server to voter", "peer", p.Server.ID)
				if err := s.store.AddVoter(p.Server.ID, p.Server.Address); err != nil {
					s.log.Warn("autopilot: promote", "peer", p.Server.ID, "err", err)
				}
			}
		}
	}
	// Remove servers dead for too long, keeping a quorum of the voters that remain.
	voters, aliveVoters := 0, 0
	for _, sv := range conf {
		if sv.Voter {
			voters++
			if _, ok := alive[sv.ID]; ok || sv.ID == s.cfg.Name {
				aliveVoters++
			}
		}
	}
	now := time.Now()
	for _, sv := range conf {
		if _, ok := alive[sv.ID]; ok || sv.ID == s.cfg.Name {
			delete(deadSince, sv.ID)
			continue
		}
		if deadSince[sv.ID].IsZero() {
			deadSince[sv.ID] = now
		}
		if now.Sub(deadSince[sv.ID]) < s.cfg.DeadServerTimeout {
			continue
		}
		remaining := voters
		if sv.Voter {
			remaining--
		}
		if aliveVoters < remaining/2+1 {
			continue // removing it would not leave a working quorum
		}
		s.log.Info("autopilot: removing dead server", "peer", sv.ID, "dead_for", now.Sub(deadSince[sv.ID]).Round(time.Second))
		if err := s.store.RemoveServer(sv.ID); err == nil {
			delete(deadSince, sv.ID)
			if sv.Voter {
				voters--
			}
		}
	}
}
