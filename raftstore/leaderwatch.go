package raftstore

import (
	"sync"

	"github.com/hashicorp/raft"
)

// leaderWatch tells a forwarded call that the leader it went to is no longer this node's
// leader. A leader that is partitioned away or paused never answers, and without this the
// call would hang until the caller's own deadline; once this node sees another leader take
// over (an election, about a second), the call can end.
type leaderWatch struct {
	mu       sync.Mutex
	addr     raft.ServerAddress // the last leader known, never ""
	changed  chan struct{}      // closed when addr changes
	observed chan struct{}      // closed at every observation, "" included
}

func newLeaderWatch() *leaderWatch {
	return &leaderWatch{changed: make(chan struct{}), observed: make(chan struct{})}
}

// next returns a channel closed at raft's next leader observation, whatever it says.
// Callers waiting for a leader read raft's own view after taking it, so none is missed.
func (w *leaderWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.observed
}

// since returns a channel closed once the leader is no longer addr. When the watch does not
// yet (or no longer) agree that addr leads, an observation is on its way and it cannot tell
// which came first: it returns nil, and the call waits on its own deadline as before.
func (w *leaderWatch) since(addr raft.ServerAddress) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.addr != addr {
		return nil
	}
	return w.changed
}

// set records the leader raft reports now. A leader that is merely unknown for a moment
// (a follower's heartbeat timeout on a CPU-starved machine, with the same leader back a
// moment later) changes nothing: only another leader ends the calls waiting on the old one,
// which would otherwise fail writes that were about to succeed.
func (w *leaderWatch) set(addr raft.ServerAddress) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.observed)
	w.observed = make(chan struct{})
	if addr != "" && addr != w.addr {
		w.addr = addr
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// follow keeps w current from raft's leader observations, which arrive in the order raft
// made the changes, until done is closed. The channel is generous: raft drops an
// observation rather than block on a full one.
func (w *leaderWatch) follow(r *raft.Raft, done <-chan struct{}) {
	obs := make(chan raft.Observation, 256)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(o)
	defer r.DeregisterObserver(o) // raft has no leader yet when the store opens: w starts at ""
	for {
		select {
		case <-done:
			return
		case o := <-obs:
			w.set(o.Data.(raft.LeaderObservation).LeaderAddr)
		}
	}
}
