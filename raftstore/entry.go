package raftstore

import (
	"encoding/binary"
	"fmt"
)

// Log entry layout: one type byte, eight bytes of leader time (Unix nanoseconds, big
// endian, stamped by the leader when it proposes), then the type's payload.
//
// The high bit of the type byte marks an entry that an older node may skip if it does not
// know the type (a newer leader's optional entry during a rolling upgrade); an unknown type
// without that bit is a corrupt entry and fails as such, deterministically on every node.
const (
	entryTxn        byte = 1
	flagIgnorable   byte = 0x80
	entryHeaderSize      = 9
)

// encodeTxn builds a txn entry with a zero time; the leader stamps it.
func encodeTxn(ops []Op) []byte {
	size := entryHeaderSize + binary.MaxVarintLen64
	for _, op := range ops {
		size += 1 + 3*binary.MaxVarintLen64 + len(op.Key) + len(op.Value)
	}
	b := make([]byte, entryHeaderSize, size)
	b[0] = entryTxn
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		b = append(b, byte(op.Kind))
		b = binary.AppendUvarint(b, uint64(len(op.Key)))
		b = append(b, op.Key...)
		b = binary.AppendUvarint(b, uint64(len(op.Value)))
		b = append(b, op.Value...)
		b = binary.AppendVarint(b, op.IfModRevision)
	}
	return b
}

// stampTime writes the leader's clock into an entry; only the leader calls it.
func stampTime(b []byte, unixNano int64) {
	binary.BigEndian.PutUint64(b[1:entryHeaderSize], uint64(unixNano))
}

type decodedEntry struct {
	kind byte
	time int64
	ops  []Op
}

// decodeEntry parses an entry. It never panics: truncated or malformed input is an error
// wrapping ErrCorruptEntry. Values alias b, which raft does not reuse after Apply.
func decodeEntry(b []byte) (decodedEntry, error) {
	var e decodedEntry
	if len(b) < entryHeaderSize {
		return e, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorruptEntry, len(b))
	}
	e.kind = b[0]
	e.time = int64(binary.BigEndian.Uint64(b[1:entryHeaderSize]))
	if e.kind&^flagIgnorable != entryTxn {
		return e, nil // caller decides: ignorable or corrupt
	}
	r := reader{b: b[entryHeaderSize:]}
	n := r.uvarint()
	if n == 0 || n > uint64(len(r.b)) { // every op takes at least one byte
		return e, fmt.Errorf("%w: bad op count %d", ErrCorruptEntry, n)
	}
	e.ops = make([]Op, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		var op Op
		op.Kind = OpKind(r.byte())
		op.Key = string(r.bytes())
		op.Value = r.bytes()
		op.IfModRevision = r.varint()
		e.ops = append(e.ops, op)
	}
	if r.err != nil {
		return e, fmt.Errorf("%w: %v", ErrCorruptEntry, r.err)
	}
	if len(r.b) != 0 {
		return e, fmt.Errorf("%w: %d trailing bytes", ErrCorruptEntry, len(r.b))
	}
	return e, nil
}

// reader is a bounds-checked cursor; the first error sticks and later reads return zeros.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated %s", what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("bytes")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
