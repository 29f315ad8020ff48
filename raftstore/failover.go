package raftstore

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// Fast failover when the leader's process is gone.
//
// A hashicorp/raft follower campaigns only after its heartbeat timeout, and refuses to vote
// while it still knows a leader, so an election after a leader dies waits for the slower
// of the two followers' randomised timeouts (one to two heartbeat timeouts). When the
// leader's process dies, though, its connections close at once, and its Raft port refuses
// connections: that is certain, where silence is not. A follower that sees a connection
// from its peers close checks the leader's port; if it refuses, one follower (the lowest ID
// among the remaining voters that answer) picks the one with the longest log (the lowest ID
// among equals) and has it start an election at once, the way a leadership transfer does:
// a TimeoutNow request, whose candidate the others grant their votes even while they still
// know the dead leader. The longest log, because the others refuse a shorter one: a server
// restarted a moment ago and still catching up would lose, and the heartbeat timeouts
// would decide after all; one decider, because two candidates at once split the votes.
// Votes still check terms and logs, so safety is Raft's own; only the start of the
// election moves. A leader that is paused or cut off (its port does not refuse) is left to
// the heartbeat timeouts as before.

// lossConn reports the end of an accepted Raft connection: the leader's heartbeat and
// replication connections end when its process dies.
type lossConn struct {
	net.Conn
	once sync.Once
	lost func()
}

func (c *lossConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && !isTimeout(err) {
		c.once.Do(c.lost)
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// failover runs at most one leader check at a time, and another after it when a
// connection ended meanwhile (the one that ended while the leader still answered must not
// hide the one that ends with its death).
type failover struct {
	s        *Store
	checking atomic.Bool
	again    atomic.Bool
	// The dead leader (and its term) this node last started an election for: a second
	// TimeoutNow could depose the successor.
	actedAddr raft.ServerAddress
	actedTerm uint64
}

// peerConnLost is called when an accepted Raft connection ends.
func (f *failover) peerConnLost() {
	if f.s.ctx.Err() != nil {
		return
	}
	f.again.Store(true)
	if !f.checking.CompareAndSwap(false, true) {
		return
	}
	// Not in the store's WaitGroup: connections end while Close waits on it. The check
	// ends with the store's context, and raft's methods are safe after its shutdown.
	go func() {
		for {
			for f.again.Swap(false) {
				f.check()
			}
			f.checking.Store(false)
			// A loss reported between the last Swap and the Store above found checking
			// still set and left it to this goroutine.
			if !f.again.Load() || !f.checking.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

func (f *failover) check() {
	s := f.s
	if s.ctx.Err() != nil || s.raft.State() != raft.Follower {
		return
	}
	leaderAddr, leaderID := s.raft.LeaderWithID()
	if leaderAddr == "" {
		return // an election is under way already
	}
	ctx, cancel := context.WithTimeout(s.ctx, 500*time.Millisecond)
	conn, err := s.mux.layer.Dial(ctx, string(leaderAddr))
	cancel()
	if err == nil {
		conn.Close()
		return // the leader is there: the connection ended for another reason
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		s.cfg.Logger.Debug("raftstore: a peer connection ended; the leader's port does not refuse", "leader", string(leaderID), "err", err)
		return // silence or a slow network: the heartbeat timeout decides
	}
	term := s.raft.CurrentTerm()
	if leaderAddr == f.actedAddr && term == f.actedTerm {
		return // done once already for this leader
	}
	target, ok := f.successor(leaderID, true)
	if !ok {
		// Another follower decides. Should it not (it was busy restarting, say), act in
		// its place: had it, its candidate would have asked this node for a vote by now,
		// moving this node's term on.
		s.cfg.Logger.Info("raftstore: the leader's port refuses connections; another follower starts the election", "leader", string(leaderID))
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(fallbackWait):
		}
		if a, _ := s.raft.LeaderWithID(); a != leaderAddr || s.raft.State() != raft.Follower || s.raft.CurrentTerm() != term {
			return
		}
		if target, ok = f.successor(leaderID, false); !ok {
			return
		}
	}
	// Leadership may have moved while the port was checked: act only against the dead
	// leader, never against one this node has since learnt of.
	if a, _ := s.raft.LeaderWithID(); a != leaderAddr || s.raft.State() != raft.Follower {
		return
	}
	f.actedAddr, f.actedTerm = leaderAddr, term
	s.cfg.Logger.Warn("raftstore: the leader's port refuses connections: starting an election now",
		"leader", string(leaderID), "addr", string(leaderAddr), "candidate", string(target.ID))
	if string(target.ID) == s.cfg.ID {
		err = s.campaign()
	} else {
		err = f.callPeer(target.Address, "Store.Campaign", 2*time.Second, &struct{}{})
	}
	if err != nil {
		s.cfg.Logger.Warn("raftstore: could not start the election", "candidate", string(target.ID), "err", err)
	}
}

// campaign starts an election on this node at once, as a leadership transfer's target
// does: a TimeoutNow request to itself. Raft's idle connections to its peers go first: one
// to a peer restarted since it was used answers the vote request with EOF, which raft does
// not retry, and the election would wait out its timeout (3.3 s in a chaos run).
func (s *Store) campaign() error {
	s.transport.CloseStreams()
	self := raft.ServerAddress(s.transport.LocalAddr())
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(s.cfg.ID),
		Addr:            []byte(self),
	}}
	return s.transport.TimeoutNow(raft.ServerID(s.cfg.ID), self, req, &raft.TimeoutNowResponse{})
}

// fallbackWait is how long a follower that is not the decider waits for the decider's
// election before it starts one itself.
const fallbackWait = 300 * time.Millisecond

// successor picks who should campaign for the dead leader's place, if this node is the one
// to decide (or decide is false): of the voters other than the leader that answer within a
// moment (this node included), the decider has the lowest ID and the successor the longest
// log (the lowest ID among equals). Every follower sees the same live set, so exactly one
// decides.
func (f *failover) successor(leaderID raft.ServerID, decide bool) (raft.Server, bool) {
	s := f.s
	cf := s.raft.GetConfiguration()
	if cf.Error() != nil {
		return raft.Server{}, false
	}
	var self raft.Server
	var peers []raft.Server
	for _, srv := range cf.Configuration().Servers {
		switch {
		case srv.Suffrage != raft.Voter || srv.ID == leaderID:
		case string(srv.ID) == s.cfg.ID:
			self = srv
		default:
			peers = append(peers, srv)
		}
	}
	if self.ID == "" {
		return raft.Server{}, false // not a voter
	}
	best, bestIndex := self, s.raft.LastIndex()
	for _, srv := range peers {
		var st PeerStatus
		if err := f.callPeer(srv.Address, "Store.Status", 300*time.Millisecond, &st); err != nil {
			s.cfg.Logger.Debug("raftstore: no status from a peer", "peer", string(srv.ID), "err", err)
			continue // it can neither campaign nor vote
		}
		if decide && srv.ID < self.ID {
			return raft.Server{}, false // a live follower with a lower ID decides
		}
		if st.LastIndex > bestIndex || (st.LastIndex == bestIndex && srv.ID < best.ID) {
			best, bestIndex = srv, st.LastIndex
		}
	}
	return best, true
}

// callPeer makes an idempotent call to a peer, each attempt within timeout, and makes it a
// second time when the first breaks: the connection to a peer restarted since it was last
// used breaks at the first call (and is dropped). A peer's status taken for a dead peer
// made two deciders in a chaos run (both followers campaigned and split the votes, 1.3 s).
func (f *failover) callPeer(addr raft.ServerAddress, method string, timeout time.Duration, reply any) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		ctx, cancel := context.WithTimeout(f.s.ctx, timeout)
		err = f.s.peers.call(ctx, nil, string(addr), method, struct{}{}, reply)
		cancel()
		if !errors.Is(err, errBroken) {
			return err
		}
	}
	return err
}
