package raftstore

import (
	"context"
	"errors"
	"net"
	"slices"
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
// from its peers close checks the leader's port; if it refuses, the follower with the
// lowest ID among the remaining voters starts an election at once, the way a leadership
// transfer does (a TimeoutNow request, sent to itself), whose votes the others grant even
// while they still know the dead leader. Votes still check terms and logs, so safety is
// Raft's own; only the start of the election moves. A leader that is paused or cut off
// (its port does not refuse) is left to the heartbeat timeout as before.

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
		return // silence or a slow network: the heartbeat timeout decides
	}
	cf := s.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	var voters []string
	for _, srv := range cf.Configuration().Servers {
		if srv.Suffrage == raft.Voter && srv.ID != leaderID {
			voters = append(voters, string(srv.ID))
		}
	}
	slices.Sort(voters)
	if len(voters) == 0 || voters[0] != s.cfg.ID {
		return // the lowest ID campaigns; this node's vote will go to it
	}
	// Leadership may have moved while the port was checked: campaign only against the
	// dead leader, never against one this node has since learnt of.
	if a, _ := s.raft.LeaderWithID(); a != leaderAddr || s.raft.State() != raft.Follower {
		return
	}
	s.cfg.Logger.Warn("raftstore: the leader's port refuses connections: starting an election now",
		"leader", string(leaderID), "addr", string(leaderAddr))
	self := raft.ServerAddress(s.transport.LocalAddr())
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(s.cfg.ID),
		Addr:            []byte(self),
	}}
	if err := s.transport.TimeoutNow(raft.ServerID(s.cfg.ID), self, req, &raft.TimeoutNowResponse{}); err != nil {
		s.cfg.Logger.Warn("raftstore: could not start the election", "err", err)
	}
}
