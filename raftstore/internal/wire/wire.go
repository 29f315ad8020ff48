// Package wire holds the messages of raftstore's forwarding protocol (net/rpc with gob over
// the store's authenticated connections). They are exported only because net/rpc requires it.
package wire

// ApplyArgs carries an encoded log entry from a follower to the leader.
type ApplyArgs struct {
	Data []byte
}

// ResultKV is one op's result.
type ResultKV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// ApplyReply is the leader's answer: the results, or an error code and message.
type ApplyReply struct {
	Revision int64
	Results  []ResultKV
	ErrCode  uint8
	ErrMsg   string
	IsOpErr  bool
	OpIndex  int
	OpKey    string
}

// ReadIndexReply is the leader's read index, or an error.
type ReadIndexReply struct {
	Index   uint64
	ErrCode uint8
	ErrMsg  string
}

// Status is one server's own view of its progress.
type Status struct {
	ID           string
	State        string
	Term         uint64
	LastIndex    uint64
	AppliedIndex uint64
	Revision     int64
}
