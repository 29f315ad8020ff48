package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// disk is a node's Raft state on disk: the log in <dir>/wal (hashicorp/raft-wal, the
// write-ahead log Consul uses), the stable store (term and vote) in <dir>/raft.db
// (raft-boltdb), and snapshots in <dir>/snapshots.
//
// DESIGN.md names raft-boltdb for the log too. Skiff differs on purpose, after measuring
// it (`skiff bench store`): bolt fdatasyncs twice per commit (pages, then meta) and
// hashicorp/raft syncs the leader's log before replicating, so one client's puts waited for
// about four syncs in a row and ran at 0.6x etcd's rate. raft-wal syncs once per append;
// with it one client's puts beat etcd's. The stable store is written only on term and vote
// changes, so bolt stays there.
type disk struct {
	wal   *wal.WAL
	meta  *metadb.BoltMetaDB // the WAL's index; raft-wal v0.4.0's Close leaves it open
	bolt  *raftboltdb.BoltStore
	snaps *raft.FileSnapshotStore
}

func openDisk(cfg Config) (*disk, error) {
	walDir := filepath.Join(cfg.Dir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: %w", err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir, wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("raftstore: open log: %w", err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		w.Close()
		meta.Close()
		return nil, fmt.Errorf("raftstore: open stable store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(cfg.Dir, cfg.SnapshotRetain, cfg.RaftLog)
	if err != nil {
		w.Close()
		meta.Close()
		bolt.Close()
		return nil, fmt.Errorf("raftstore: open snapshots: %w", err)
	}
	return &disk{wal: w, meta: meta, bolt: bolt, snaps: snaps}, nil
}

func (d *disk) Close() error {
	return errors.Join(d.wal.Close(), d.meta.Close(), d.bolt.Close())
}

// HasState reports whether a node's data directory already holds Raft state, so a caller
// knows not to bootstrap it again. Call it before Open: the files are locked while open.
func HasState(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	d, err := openDisk(Config{Dir: dir, SnapshotRetain: 1, RaftLog: os.Stderr})
	if err != nil {
		return false, err
	}
	defer d.Close()
	return raft.HasExistingState(d.wal, d.bolt, d.snaps)
}
