package raftstore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// A data directory from before raftlog has its log in raft.db: opening it moves the log out,
// entry for entry, and leaves bolt with the stable store only.
func TestLogMigratesOutOfBolt(t *testing.T) {
	for _, crashAfterRename := range []bool{false, true} {
		t.Run(fmt.Sprintf("crashAfterRename=%v", crashAfterRename), func(t *testing.T) {
			dir := t.TempDir()
			bolt, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
			if err != nil {
				t.Fatal(err)
			}
			var want []*raft.Log
			for i := uint64(5); i <= 700; i++ {
				want = append(want, &raft.Log{Index: i, Term: 1 + i/100, Type: raft.LogCommand, Data: fmt.Appendf(nil, "v%d", i)})
			}
			if err := bolt.StoreLogs(want); err != nil {
				t.Fatal(err)
			}
			if err := bolt.SetUint64([]byte("CurrentTerm"), 8); err != nil {
				t.Fatal(err)
			}
			if crashAfterRename { // the copy was renamed into place, bolt's not yet deleted
				if err := migrateLog(dir, filepath.Join(dir, "log"), bolt); err != nil {
					t.Fatal(err)
				}
			}
			bolt.Close()

			cfg := Config{Dir: dir, SnapshotRetain: 1, RaftLog: os.Stderr}
			d, err := openDisk(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if first, _ := d.bolt.FirstIndex(); first != 0 {
				t.Fatalf("bolt still holds entries from %d", first)
			}
			if term, _ := d.bolt.GetUint64([]byte("CurrentTerm")); term != 8 {
				t.Fatalf("term %d after migration", term)
			}
			first, _ := d.log.FirstIndex()
			last, _ := d.log.LastIndex()
			if first != 5 || last != 700 {
				t.Fatalf("migrated log %d-%d", first, last)
			}
			for _, w := range want {
				var got raft.Log
				if err := d.log.GetLog(w.Index, &got); err != nil || got.Term != w.Term || string(got.Data) != string(w.Data) {
					t.Fatalf("entry %d: %+v %v", w.Index, got, err)
				}
			}
		})
	}
}

// TestStableStoreWritesAfterCloseAreDropped: a heartbeat handled on a transport goroutine
// can write the term while the store closes; raft panics on a failed term write, so the
// write after Close is dropped rather than failed, and the term on disk is the last one
// written before.
func TestStableStoreWritesAfterCloseAreDropped(t *testing.T) {
	dir := t.TempDir()
	d, err := openDisk(Config{Dir: dir, SnapshotRetain: 1, RaftLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.stable.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.stable.SetUint64([]byte("CurrentTerm"), 5); err != nil {
		t.Fatalf("a term write after Close: %v", err)
	}
	d, err = openDisk(Config{Dir: dir, SnapshotRetain: 1, RaftLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if term, err := d.stable.GetUint64([]byte("CurrentTerm")); err != nil || term != 4 {
		t.Fatalf("term on disk %d (%v), want 4", term, err)
	}
}
