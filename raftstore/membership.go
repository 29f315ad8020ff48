package raftstore

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Membership changes run on the leader; elsewhere they fail with ErrNotLeader.

// AddVoter adds a voting server, or promotes a non-voter.
func (s *Store) AddVoter(id, addr string) error {
	return raftError(s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.cfg.ApplyTimeout).Error())
}

// AddNonvoter adds a server that receives the log but does not vote; a new server joins this
// way and is promoted once it has caught up.
func (s *Store) AddNonvoter(id, addr string) error {
	return raftError(s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.cfg.ApplyTimeout).Error())
}

// RemoveServer removes a server from the configuration.
func (s *Store) RemoveServer(id string) error {
	return raftError(s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout).Error())
}

// TransferLeadership hands leadership to another voter (a leaving leader calls it first).
func (s *Store) TransferLeadership() error {
	return raftError(s.raft.LeadershipTransfer().Error())
}

// Servers returns the current Raft configuration.
func (s *Store) Servers() ([]Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	var out []Server
	for _, sv := range f.Configuration().Servers {
		out = append(out, Server{ID: string(sv.ID), Address: string(sv.Address), Voter: sv.Suffrage == raft.Voter})
	}
	return out, nil
}

// Stats is a node's view of the cluster.
type Stats struct {
	PeerStatus
	LeaderID    string
	LeaderAddr  string
	CommitIndex uint64
	LastContact time.Time // last contact with the leader (zero on the leader)
	// Peers, on the leader only: each server's own report of its progress.
	Peers []PeerProgress
}

// PeerProgress is one server's progress as the leader sees it.
type PeerProgress struct {
	Server Server
	Status PeerStatus
	Lag    uint64 // leader's applied index minus the peer's
	Err    string // when the peer did not answer
}

func (s *Store) selfStatus() PeerStatus {
	rev, applied, _ := s.fsm.status()
	return PeerStatus{
		ID:           s.cfg.ID,
		State:        s.raft.State().String(),
		Term:         s.raft.CurrentTerm(),
		LastIndex:    s.raft.LastIndex(),
		AppliedIndex: applied,
		Revision:     rev,
	}
}

// Stats reports this node's Raft state; on the leader it also asks every peer for its
// progress (each within 500 ms), since raft does not expose replication progress.
func (s *Store) Stats(ctx context.Context) Stats {
	st := Stats{PeerStatus: s.selfStatus(), CommitIndex: s.raft.CommitIndex()}
	st.LeaderID, st.LeaderAddr = s.Leader()
	if s.raft.State() != raft.Leader {
		st.LastContact = s.raft.LastContact()
		return st
	}
	servers, err := s.Servers()
	if err != nil {
		return st
	}
	st.Peers = make([]PeerProgress, len(servers))
	var wg sync.WaitGroup
	for i, sv := range servers {
		st.Peers[i].Server = sv
		if sv.ID == s.cfg.ID {
			st.Peers[i].Status = st.PeerStatus
			continue
		}
		wg.Add(1)
		go func(p *PeerProgress) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			if err := s.peers.call(cctx, nil, p.Server.Address, "Store.Status", struct{}{}, &p.Status); err != nil {
				p.Err = err.Error()
			}
		}(&st.Peers[i])
	}
	wg.Wait()
	for i := range st.Peers {
		if p := &st.Peers[i]; p.Err == "" && st.AppliedIndex > p.Status.AppliedIndex {
			p.Lag = st.AppliedIndex - p.Status.AppliedIndex
		}
	}
	return st
}
