package raftstore

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
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
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("raftstore: open log: %w", err)
	}
	defer bolt.Close()
	snaps, err := raft.NewFileSnapshotStore(cfg.Dir, cfg.SnapshotRetain, cfg.RaftLog)
	if err != nil {
		return err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: cfg.RaftLog})
	var conf raft.Configuration
	for _, sv := range servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(sv.ID), Address: raft.ServerAddress(sv.Address), Suffrage: raft.Voter})
	}
	fsm := newFSM(limits{maxKey: cfg.MaxKeySize, maxValue: cfg.MaxValueSize}, cfg.HistoryEvents, cfg.HistoryAge, nil)
	_, trans := raft.NewInmemTransport("")
	return raft.RecoverCluster(rc, fsm, bolt, bolt, snaps, trans, conf)
}
