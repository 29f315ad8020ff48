package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// disk is a node's Raft state on disk: the log and the stable store (term and vote) in
// <dir>/raft.db (raft-boltdb, as DESIGN.md names), snapshots in <dir>/snapshots.
//
// hashicorp/raft-wal was tried as the log (it syncs once per append where bolt syncs twice,
// and one client's puts were faster with it) and dropped: v0.4.0 truncates a log tail
// wrongly (hashicorp/raft-wal#31), and the chaos bench's second leader kill left a server
// that panicked at start with "sealed segment has no index block". Durability first.
//
// The freelist is not synced (NoFreelistSync, as Consul offers): bolt rebuilds it on open,
// and each commit writes fewer pages; the map freelist keeps allocation cheap as the file
// grows.
type disk struct {
	bolt  *raftboltdb.BoltStore
	snaps *raft.FileSnapshotStore
}

func openDisk(cfg Config) (*disk, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: %w", err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{
			Timeout:        0,
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("raftstore: open log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(cfg.Dir, cfg.SnapshotRetain, cfg.RaftLog)
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("raftstore: open snapshots: %w", err)
	}
	return &disk{bolt: bolt, snaps: snaps}, nil
}

func (d *disk) Close() error {
	return d.bolt.Close()
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
	return raft.HasExistingState(d.bolt, d.bolt, d.snaps)
}
