// Package raftlog is a hashicorp/raft LogStore of append-only segment files: one write and
// one fdatasync per StoreLogs, a chained CRC per record, an in-memory index, suffix and prefix
// truncation, and recovery of a torn tail on open.
package raftlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
)

// Options tune a Log; the zero value is the default.
type Options struct {
	// SegmentSize is the size past which the next write starts a new segment file (a batch
	// never spans two). Default 4 MiB.
	SegmentSize int64
	// NoPrealloc turns off the zeroed spare segment prepared in the background.
	NoPrealloc bool
}

// Log is a raft.LogStore. Its methods are safe for concurrent use.
//
// Durability: StoreLogs returns after the records are written and fdatasynced. DeleteRange of
// a suffix returns once the deletion is on disk (later segment files unlinked and the
// directory synced, the truncated bytes zeroed and synced), so a deleted record never comes
// back. DeleteRange of a prefix unlinks whole segment files only: after a restart, FirstIndex
// may be lower than before (the rest of the oldest segment), which raft tolerates, since those
// entries are committed and covered by a snapshot.
type Log struct {
	dir  string
	opts Options

	wmu  sync.Mutex // serialises writers (StoreLogs, DeleteRange, Close)
	buf  []byte     // encoding buffer, under wmu
	fail error      // set when a write or sync failed: the log refuses further writes

	mu     sync.RWMutex // guards the fields below and every segment's index
	segs   []*segment   // in index order; the last is the tail that writes go to
	first  uint64       // 0 when empty
	last   uint64       // 0 when empty
	closed bool

	spare spare
}

type segment struct {
	f    *os.File
	path string
	base uint64   // index of its first record
	prev uint32   // chain CRC before its first record
	offs []int64  // record base+i starts at offs[i]
	crcs []uint32 // and has CRC crcs[i]
	end  int64    // just past the last record
}

func (s *segment) tailCRC() uint32 {
	if len(s.crcs) == 0 {
		return s.prev
	}
	return s.crcs[len(s.crcs)-1]
}

func (s *segment) next() uint64 { return s.base + uint64(len(s.offs)) }

func segName(base uint64) string { return fmt.Sprintf("%020d.seg", base) }

// Open opens the log in dir, creating dir if needed, and recovers it: segments older than
// the newest fresh start are removed, a torn tail is cut off and zeroed, and a break in the
// chain anywhere else is ErrCorrupt.
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 4 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	l := &Log{dir: dir, opts: opts}
	l.spare.init(dir, opts.SegmentSize, opts.NoPrealloc)
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, err
	}
	l.spare.start()
	return l, nil
}

func (l *Log) recover() error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	var bases []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") { // a segment that was never published
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return fmt.Errorf("raftlog: %w", err)
			}
			continue
		}
		num, ok := strings.CutSuffix(name, ".seg") // (the spare is named "spare")
		if !ok {
			continue
		}
		base, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: segment file name %q", ErrCorrupt, name)
		}
		bases = append(bases, base)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })

	var fresh int // index in segs of the newest fresh start
	for _, base := range bases {
		s, data, hdr, err := l.openSegment(base)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
		if hdr.flags&flagFresh != 0 {
			fresh = len(l.segs) - 1
		}
		scan(s, data)
	}
	// Leftovers of a log that was deleted as a whole (its unlinks did not reach the disk).
	for _, s := range l.segs[:fresh] {
		s.f.Close()
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
	}
	l.segs = l.segs[fresh:]
	for i := 1; i < len(l.segs); i++ {
		p, s := l.segs[i-1], l.segs[i]
		if s.base != p.next() || s.prev != p.tailCRC() {
			return fmt.Errorf("%w: %s does not continue %s (ends before %d)", ErrCorrupt, filepath.Base(s.path), filepath.Base(p.path), p.next())
		}
		if len(p.offs) == 0 {
			return fmt.Errorf("%w: empty segment %s before the last", ErrCorrupt, filepath.Base(p.path))
		}
	}
	if len(l.segs) == 0 {
		return nil
	}
	tail := l.segs[len(l.segs)-1]
	if err := l.zeroTornTail(tail); err != nil {
		return err
	}
	if len(l.segs[0].offs) > 0 {
		l.first = l.segs[0].base
		l.last = tail.next() - 1
	}
	return nil
}

func (l *Log) openSegment(base uint64) (*segment, []byte, segHeader, error) {
	path := filepath.Join(l.dir, segName(base))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, segHeader{}, fmt.Errorf("raftlog: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, nil, segHeader{}, fmt.Errorf("raftlog: %w", err)
	}
	hdr, err := decodeHeader(data)
	if err == nil && hdr.base != base {
		err = fmt.Errorf("%w: %s says it starts at %d", ErrCorrupt, path, hdr.base)
	}
	if err != nil {
		f.Close()
		return nil, nil, segHeader{}, fmt.Errorf("%s: %w", path, err)
	}
	return &segment{f: f, path: path, base: base, prev: hdr.prev}, data, hdr, nil
}

// scan indexes the valid records of a segment's contents.
func scan(s *segment, data []byte) {
	off, crc, idx := int64(headerSize), s.prev, s.base
	for {
		n, c, ok := parseRecord(data[off:], idx, crc)
		if !ok {
			break
		}
		s.offs = append(s.offs, off)
		s.crcs = append(s.crcs, c)
		off += int64(n)
		crc = c
		idx++
	}
	s.end = off
}

// zeroTornTail zeroes whatever follows the last valid record of the tail segment (a write
// that was torn by a crash, never acknowledged), so later writes never sit next to it.
func (l *Log) zeroTornTail(s *segment) error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	size := st.Size()
	buf := make([]byte, 1<<20)
	dirty := int64(-1)
	for off := s.end; off < size; off += int64(len(buf)) {
		n, err := s.f.ReadAt(buf, off)
		if n == 0 && err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				dirty = off + int64(i) + 1
				break
			}
		}
	}
	if dirty > 0 {
		if err := zeroRange(s.f, s.end, dirty); err != nil {
			return err
		}
		if err := fdatasync(s.f); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
	}
	return nil
}

func zeroRange(f *os.File, from, to int64) error {
	zeros := make([]byte, min(to-from, 1<<20))
	for off := from; off < to; {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		off += n
	}
	return nil
}

// FirstIndex returns the first index in the log, 0 when it is empty.
func (l *Log) FirstIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.first, nil
}

// LastIndex returns the last index in the log, 0 when it is empty.
func (l *Log) LastIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last, nil
}

// GetLog reads the entry at index.
func (l *Log) GetLog(index uint64, out *raft.Log) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return errClosed
	}
	if l.last == 0 || index < l.first || index > l.last {
		l.mu.RUnlock()
		return raft.ErrLogNotFound
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > index }) - 1
	s := l.segs[i]
	k := int(index - s.base)
	off, end := s.offs[k], s.end
	if k+1 < len(s.offs) {
		end = s.offs[k+1]
	}
	prev := s.prev
	if k > 0 {
		prev = s.crcs[k-1]
	}
	want := s.crcs[k]
	buf := make([]byte, end-off)
	_, err := s.f.ReadAt(buf, off)
	l.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("raftlog: read %d: %w", index, err)
	}
	if _, crc, ok := parseRecord(buf, index, prev); !ok || crc != want {
		return fmt.Errorf("%w: record %d fails its checksum", ErrCorrupt, index)
	}
	decodeRecord(buf, out)
	return nil
}

// StoreLog stores one entry.
func (l *Log) StoreLog(e *raft.Log) error { return l.StoreLogs([]*raft.Log{e}) }

var errClosed = errors.New("raftlog: closed")

// StoreLogs appends entries, which must be consecutive and follow the last one. An entry
// after a gap (raft appends past an installed snapshot) starts the log afresh: everything
// before the gap is committed and in the snapshot.
func (l *Log) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	for i := 1; i < len(logs); i++ {
		if logs[i].Index != logs[i-1].Index+1 {
			return fmt.Errorf("raftlog: entries %d and %d are not consecutive", logs[i-1].Index, logs[i].Index)
		}
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	first := logs[0].Index
	if first == 0 {
		return errors.New("raftlog: entry index 0")
	}
	if l.last != 0 && first <= l.last {
		return fmt.Errorf("raftlog: entry %d overwrites the log (last %d): delete the suffix first", first, l.last)
	}
	if l.last == 0 || first > l.last+1 {
		if err := l.restart(first); err != nil {
			return l.failed(err)
		}
	}
	tail := l.segs[len(l.segs)-1]
	if tail.end >= l.opts.SegmentSize && len(tail.offs) > 0 {
		if err := l.rotate(); err != nil {
			return l.failed(err)
		}
		tail = l.segs[len(l.segs)-1]
	}

	size := 0
	for _, e := range logs {
		size += recordSize(e)
	}
	buf := l.buf[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	offs := make([]int64, len(logs))
	crcs := make([]uint32, len(logs))
	crc := tail.tailCRC()
	for i, e := range logs {
		offs[i] = tail.end + int64(len(buf))
		buf, crc = appendRecord(buf, e, crc)
		crcs[i] = crc
	}
	if cap(buf) <= 4<<20 {
		l.buf = buf
	}
	if _, err := tail.f.WriteAt(buf, tail.end); err != nil {
		return l.failed(fmt.Errorf("raftlog: write: %w", err))
	}
	if err := fdatasync(tail.f); err != nil {
		return l.failed(fmt.Errorf("raftlog: sync: %w", err))
	}
	l.mu.Lock()
	tail.offs = append(tail.offs, offs...)
	tail.crcs = append(tail.crcs, crcs...)
	tail.end += int64(len(buf))
	if l.first == 0 {
		l.first = first
	}
	l.last = logs[len(logs)-1].Index
	l.mu.Unlock()
	return nil
}

func (l *Log) writable() error {
	if l.fail != nil {
		return fmt.Errorf("raftlog: an earlier write failed: %w", l.fail)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return errClosed
	}
	return nil
}

// failed makes a write error permanent: after a failed fdatasync the file's state is unknown
// (the kernel may have dropped the dirty pages), so nothing more is written.
func (l *Log) failed(err error) error {
	l.fail = err
	return err
}

// restart deletes every segment and starts a fresh one at base.
func (l *Log) restart(base uint64) error {
	if err := l.removeAll(); err != nil {
		return err
	}
	return l.newSegment(segHeader{base: base, flags: flagFresh})
}

// rotate seals the tail and starts the next segment, which continues its chain.
func (l *Log) rotate() error {
	tail := l.segs[len(l.segs)-1]
	return l.newSegment(segHeader{base: tail.next(), prev: tail.tailCRC()})
}

// newSegment publishes a segment file: its header is written into the spare (or a new
// temporary file) and synced, then the file is renamed into place and the directory synced,
// so a segment file under its final name always has a valid header.
func (l *Log) newSegment(h segHeader) error {
	path := filepath.Join(l.dir, segName(h.base))
	src, fromSpare := l.spare.take()
	if fromSpare {
		defer l.spare.release()
	} else {
		src = path + ".tmp"
	}
	flags := os.O_RDWR
	if !fromSpare {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(src, flags, 0o600)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	_, err = f.WriteAt(h.encode(), 0)
	if err == nil {
		err = fdatasync(f)
	}
	if err == nil {
		err = os.Rename(src, path)
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("raftlog: new segment: %w", err)
	}
	s := &segment{f: f, path: path, base: h.base, prev: h.prev, end: headerSize}
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	return nil
}

// removeAll closes and unlinks every segment and syncs the directory.
func (l *Log) removeAll() error {
	l.mu.Lock()
	segs := l.segs
	l.segs, l.first, l.last = nil, 0, 0
	l.mu.Unlock()
	if len(segs) == 0 {
		return nil
	}
	for _, s := range segs {
		s.f.Close()
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
	}
	return syncDir(l.dir)
}

// DeleteRange deletes entries min to max inclusive: a prefix of the log (after a snapshot),
// a suffix (entries that conflict with a new leader's), or all of it.
func (l *Log) DeleteRange(min, max uint64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if l.last == 0 || max < l.first || min > l.last || min > max {
		return nil
	}
	switch {
	case min <= l.first && max >= l.last:
		if err := l.removeAll(); err != nil {
			return l.failed(err)
		}
		return nil
	case min <= l.first:
		return l.deletePrefix(max)
	case max >= l.last:
		if err := l.deleteSuffix(min); err != nil {
			return l.failed(err)
		}
		return nil
	}
	return fmt.Errorf("raftlog: cannot delete %d-%d from the middle of %d-%d", min, max, l.first, l.last)
}

// deletePrefix drops entries up to max (below the last): whole segments are unlinked, oldest
// first, so a crash leaves a suffix of the log.
func (l *Log) deletePrefix(max uint64) error {
	l.mu.Lock()
	var drop []*segment
	for len(l.segs) > 1 && l.segs[1].base <= max+1 {
		drop = append(drop, l.segs[0])
		l.segs = l.segs[1:]
	}
	l.first = max + 1
	l.mu.Unlock()
	for _, s := range drop {
		s.f.Close()
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
	}
	return nil
}

// deleteSuffix drops entries from min (above the first) on. Later segment files are unlinked
// newest first and the directory synced, then the truncated bytes of the segment holding min
// are zeroed and synced: a crash at any point leaves a prefix of the log, and once it returns
// the entries cannot come back.
func (l *Log) deleteSuffix(min uint64) error {
	l.mu.Lock()
	k := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > min }) - 1
	drop := append([]*segment(nil), l.segs[k+1:]...)
	l.segs = l.segs[:k+1]
	s := l.segs[k]
	i := int(min - s.base)
	from, to := s.offs[i], s.end
	s.offs, s.crcs, s.end = s.offs[:i], s.crcs[:i], from
	l.last = min - 1
	l.mu.Unlock()
	for j := len(drop) - 1; j >= 0; j-- {
		drop[j].f.Close()
		if err := os.Remove(drop[j].path); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
	}
	if len(drop) > 0 {
		if err := syncDir(l.dir); err != nil {
			return err
		}
	}
	if err := zeroRange(s.f, from, to); err != nil {
		return err
	}
	if err := fdatasync(s.f); err != nil {
		return fmt.Errorf("raftlog: sync: %w", err)
	}
	return nil
}

// Close closes the files. The log must not be used afterwards.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.spare.stop()
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	var err error
	for _, s := range l.segs {
		err = errors.Join(err, s.f.Close())
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("raftlog: sync dir: %w", err)
	}
	return nil
}
