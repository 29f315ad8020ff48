package raftstore

// KV is one key with its value and revisions. A KV returned by the store is shared with
// the store's state: callers must not modify Value.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// OpKind is what an operation of a transaction does.
type OpKind uint8

const (
	// OpCreate writes a key that must not exist.
	OpCreate OpKind = iota + 1
	// OpUpdate writes a key that must exist (and, with IfModRevision, be at that revision).
	OpUpdate
	// OpPut writes a key whether or not it exists (conditioned like OpUpdate when asked).
	OpPut
	// OpDelete removes a key that must exist (and, with IfModRevision, be at that revision).
	OpDelete
)

func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// Op is one write of a transaction.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
	// IfModRevision, when non-zero, makes the op fail with ErrConflict unless the key's
	// current modify revision equals it (compare-and-swap).
	IfModRevision int64
}

// OpResult is the outcome of one op: the key as written, or for a delete the key as it
// was just before.
type OpResult struct {
	KV KV
}

// TxnResult is the outcome of a successful transaction.
type TxnResult struct {
	Revision int64 // the store revision the transaction produced
	Results  []OpResult
}

// EventType says what happened to a key.
type EventType uint8

const (
	EventPut EventType = iota + 1
	EventDelete
)

func (t EventType) String() string {
	if t == EventDelete {
		return "DELETE"
	}
	return "PUT"
}

// Event is one change seen by a watch. For a delete, KV holds the key with the revision of
// the deletion as ModRevision and no value; Prev holds the value that was deleted.
type Event struct {
	Type     EventType
	KV       KV
	Prev     *KV // nil when the put created the key
	Revision int64
	time     int64 // leader time of the entry, for trimming the history by age
}

// ReadOptions choose how a read is served.
type ReadOptions struct {
	// Stale serves from this node's replica without asking the leader. Fast, and may be
	// behind the latest acknowledged write.
	Stale bool
}

// ListOptions narrow a list.
type ListOptions struct {
	ReadOptions
	// Revision, when non-zero, lists the state as it was at that revision (it must still be
	// in the history). Zero reads the latest state.
	Revision int64
	// Limit caps the number of keys returned; zero means no limit.
	Limit int
	// Continue is the token from a previous page; it fixes the revision to the first page's.
	Continue string
	// Skip, when set, leaves out the keys it returns true for (they do not count toward
	// Limit). It runs under the store's read lock, so it must be quick and must not call the
	// store: a caller filtering a large list (a node agent's pods among all pods) uses it to
	// drop what it already knows it does not want, instead of holding a copy of every key.
	Skip func(key string, modRevision int64) bool
}

// ListResult is one page of a list.
type ListResult struct {
	KVs      []KV
	Revision int64  // the store revision the list was read at
	Continue string // non-empty when more keys follow
	// Remaining is how many keys after this page match (exact), when Continue is set.
	Remaining int
}
