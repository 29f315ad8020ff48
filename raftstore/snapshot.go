package raftstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/google/btree"
	"github.com/hashicorp/raft"
)

// Snapshot format: magic, revision, key count, then each key as
// (key, value, create revision, modify revision), and a CRC-32 of everything before it.
const snapshotMagic = "SKIFFSNAP1\n"

// Snapshot captures the state in O(1): a copy-on-write clone of the B-tree, written out by
// Persist while writes go on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock() // Clone touches the original tree's copy-on-write context
	defer f.mu.Unlock()
	return &fsmSnapshot{tree: f.tree.Clone(), rev: f.rev}, nil
}

type fsmSnapshot struct {
	tree *btree.BTreeG[*KV]
	rev  int64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) write(w io.Writer) error {
	crc := crc32.NewIEEE()
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<20)
	var scratch []byte
	put := func(b []byte) { scratch = append(scratch, b...) }
	scratch = append(scratch, snapshotMagic...)
	scratch = binary.AppendVarint(scratch, s.rev)
	scratch = binary.AppendUvarint(scratch, uint64(s.tree.Len()))
	var err error
	s.tree.Ascend(func(kv *KV) bool {
		scratch = binary.AppendUvarint(scratch, uint64(len(kv.Key)))
		put([]byte(kv.Key))
		scratch = binary.AppendUvarint(scratch, uint64(len(kv.Value)))
		put(kv.Value)
		scratch = binary.AppendVarint(scratch, kv.CreateRevision)
		scratch = binary.AppendVarint(scratch, kv.ModRevision)
		if len(scratch) > 64<<10 {
			_, err = bw.Write(scratch)
			scratch = scratch[:0]
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if _, err := bw.Write(scratch); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err = w.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	return err
}

func (s *fsmSnapshot) Release() {}

// Restore replaces the whole state with a snapshot's. The new state is built aside, then
// swapped in under the lock; watchers see the epoch change and end, so their clients re-list
// (STYLE.md practice 3: restore swaps, then wakes).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tree, rev, size, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.tree = tree
	f.rev = rev
	f.bytes = size
	f.hist.reset(rev)
	f.headSeq.Store(f.hist.head())
	f.epoch++
	f.wakeLocked()
	f.mu.Unlock()
	return nil
}

func readSnapshot(r io.Reader) (*btree.BTreeG[*KV], int64, int64, error) {
	crc := crc32.NewIEEE()
	br := bufio.NewReaderSize(r, 1<<20)
	tr := io.TeeReader(br, crc)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(tr, magic); err != nil || string(magic) != snapshotMagic {
		return nil, 0, 0, fmt.Errorf("%w: not a skiff snapshot", ErrCorruptEntry)
	}
	bt := byteTee{r: tr}
	rev, err := binary.ReadVarint(&bt)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: snapshot header: %v", ErrCorruptEntry, err)
	}
	n, err := binary.ReadUvarint(&bt)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: snapshot header: %v", ErrCorruptEntry, err)
	}
	tree := btree.NewG(32, kvLess)
	var size int64
	readBytes := func() ([]byte, error) {
		l, err := binary.ReadUvarint(&bt)
		if err != nil {
			return nil, err
		}
		if l > 1<<30 {
			return nil, errors.New("length out of range")
		}
		b := make([]byte, l)
		_, err = io.ReadFull(tr, b)
		return b, err
	}
	for i := uint64(0); i < n; i++ {
		k, err := readBytes()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%w: snapshot key %d: %v", ErrCorruptEntry, i, err)
		}
		v, err := readBytes()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%w: snapshot value %d: %v", ErrCorruptEntry, i, err)
		}
		cr, err1 := binary.ReadVarint(&bt)
		mr, err2 := binary.ReadVarint(&bt)
		if err := errors.Join(err1, err2); err != nil {
			return nil, 0, 0, fmt.Errorf("%w: snapshot revisions %d: %v", ErrCorruptEntry, i, err)
		}
		tree.ReplaceOrInsert(&KV{Key: string(k), Value: v, CreateRevision: cr, ModRevision: mr})
		size += int64(len(k) + len(v))
	}
	want := crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil || binary.BigEndian.Uint32(sum[:]) != want {
		return nil, 0, 0, fmt.Errorf("%w: snapshot checksum mismatch", ErrCorruptEntry)
	}
	return tree, rev, size, nil
}

// byteTee gives binary.ReadUvarint a ByteReader over the checksummed stream.
type byteTee struct {
	r   io.Reader
	one [1]byte
}

func (b *byteTee) ReadByte() (byte, error) {
	_, err := io.ReadFull(b.r, b.one[:])
	return b.one[0], err
}
