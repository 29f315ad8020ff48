package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// On-disk format. A segment file, named by the index of its first record (%020d.seg), starts
// with a header:
//
//	[0:4] magic "SKRL"   [4:8] version   [8:16] base index   [16:20] chain CRC before the
//	first record   [20:24] flags   [24:28] CRC-32C of [0:24]   [28:32] zero
//
// and holds records back to back, each
//
//	[0:4] payload length   [4:8] chained CRC   payload:
//	index u64, term u64, type u8, appendedAt unix ns i64, len u32 + data, len u32 + extensions
//
// The CRC of a record continues the CRC of the record before it (CRC-32C over every payload
// since the chain started; a segment's header carries the chain value it starts from), so a
// stale record left behind a rewritten one never verifies, and a scan stops at the first
// record that does not: the zeros of preallocated space, or a torn write.
const (
	headerSize    = 32
	recHeaderSize = 8
	fixedPayload  = 8 + 8 + 1 + 8 + 4 + 4
	magic         = "SKRL"
	formatVersion = 1
	// flagFresh marks a segment that starts a new log (the first one, or the one written
	// after everything was deleted): segments older than it are leftovers.
	flagFresh = 1
	// maxRecord bounds one record's payload, so a corrupt length is not trusted.
	maxRecord = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is returned when the log's files contradict each other or a record that was
// complete fails its checksum: data the store once synced is damaged.
var ErrCorrupt = errors.New("raftlog: corrupt log")

type segHeader struct {
	base  uint64
	prev  uint32
	flags uint32
}

func (h segHeader) encode() []byte {
	b := make([]byte, headerSize)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[4:], formatVersion)
	binary.LittleEndian.PutUint64(b[8:], h.base)
	binary.LittleEndian.PutUint32(b[16:], h.prev)
	binary.LittleEndian.PutUint32(b[20:], h.flags)
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	return b
}

func decodeHeader(b []byte) (segHeader, error) {
	if len(b) < headerSize || string(b[:4]) != magic {
		return segHeader{}, fmt.Errorf("%w: bad segment header", ErrCorrupt)
	}
	if crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return segHeader{}, fmt.Errorf("%w: segment header checksum", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != formatVersion {
		return segHeader{}, fmt.Errorf("%w: segment format version %d", ErrCorrupt, v)
	}
	return segHeader{
		base:  binary.LittleEndian.Uint64(b[8:]),
		prev:  binary.LittleEndian.Uint32(b[16:]),
		flags: binary.LittleEndian.Uint32(b[20:]),
	}, nil
}

func recordSize(l *raft.Log) int {
	return recHeaderSize + fixedPayload + len(l.Data) + len(l.Extensions)
}

// appendRecord encodes l after buf, chaining from prev, and returns the new buffer and the
// record's CRC.
func appendRecord(buf []byte, l *raft.Log, prev uint32) ([]byte, uint32) {
	start := len(buf)
	n := fixedPayload + len(l.Data) + len(l.Extensions)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(n))
	buf = binary.LittleEndian.AppendUint32(buf, 0) // CRC, filled below
	buf = binary.LittleEndian.AppendUint64(buf, l.Index)
	buf = binary.LittleEndian.AppendUint64(buf, l.Term)
	buf = append(buf, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	buf = binary.LittleEndian.AppendUint64(buf, uint64(at))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(l.Data)))
	buf = append(buf, l.Data...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(l.Extensions)))
	buf = append(buf, l.Extensions...)
	crc := crc32.Update(prev, castagnoli, buf[start+recHeaderSize:])
	binary.LittleEndian.PutUint32(buf[start+4:], crc)
	return buf, crc
}

// parseRecord checks the record at the start of b, which should hold index and continue the
// chain from prev. It returns the record's total size and CRC, or ok=false when there is no
// valid record there.
func parseRecord(b []byte, index uint64, prev uint32) (size int, crc uint32, ok bool) {
	if len(b) < recHeaderSize {
		return 0, 0, false
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < fixedPayload || n > maxRecord || recHeaderSize+n > len(b) {
		return 0, 0, false
	}
	p := b[recHeaderSize : recHeaderSize+n]
	crc = binary.LittleEndian.Uint32(b[4:])
	if crc32.Update(prev, castagnoli, p) != crc {
		return 0, 0, false
	}
	if binary.LittleEndian.Uint64(p) != index {
		return 0, 0, false
	}
	dl := int(binary.LittleEndian.Uint32(p[25:]))
	if 29+dl+4 > n {
		return 0, 0, false
	}
	el := int(binary.LittleEndian.Uint32(p[29+dl:]))
	if 29+dl+4+el != n {
		return 0, 0, false
	}
	return recHeaderSize + n, crc, true
}

// decodeRecord fills l from a record that parseRecord accepted. Data and Extensions alias b.
func decodeRecord(b []byte, l *raft.Log) {
	p := b[recHeaderSize:]
	l.Index = binary.LittleEndian.Uint64(p)
	l.Term = binary.LittleEndian.Uint64(p[8:])
	l.Type = raft.LogType(p[16])
	l.AppendedAt = time.Time{}
	if at := int64(binary.LittleEndian.Uint64(p[17:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	dl := int(binary.LittleEndian.Uint32(p[25:]))
	l.Data = nil
	if dl > 0 {
		l.Data = p[29 : 29+dl : 29+dl]
	}
	el := int(binary.LittleEndian.Uint32(p[29+dl:]))
	l.Extensions = nil
	if el > 0 {
		l.Extensions = p[33+dl : 33+dl+el : 33+dl+el]
	}
}
