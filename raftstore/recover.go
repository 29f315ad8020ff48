package raftstore

import (
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Recover rewrites the Raft configuration of a stopped node to servers, for a cluster that
// lost its quorum for good: run it on every survivor with the same list, then start them.
// It is hashicorp/raft's RecoverCluster (Consul's and Nomad's peers.json): committed entries
// are kept, and the survivors elect a leader among themselves. Entries that only the lost
// servers had are gone, which is why it is a manual step.
func Recover(cfg Config, servers []Server) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	d, err := openDisk(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: cfg.RaftLog})
	var conf raft.Configuration
	for _, sv := range servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(sv.ID), Address: raft.ServerAddress(sv.Address), Suffrage: raft.Voter})
	}
	fsm := newFSM(limits{maxKey: cfg.MaxKeySize, maxValue: cfg.MaxValueSize}, historyBounds{events: cfg.HistoryEvents, bytes: cfg.HistoryBytes, age: cfg.HistoryAge}, nil)
	_, trans := raft.NewInmemTransport("")
	return raft.RecoverCluster(rc, fsm, d.log, d.stable, d.snaps, trans, conf)
}
