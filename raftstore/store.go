package raftstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/skiff-dev/skiff/raftstore/internal/wire"
)

// Store is one node of the replicated keyspace.
type Store struct {
	cfg       Config
	ctx       context.Context // cancelled by Close; ends watchers and background work
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	raft      *raft.Raft
	fsm       *fsm
	mux       *mux
	peers     *peers
	transport *commitTransport
	disk      *disk
	metrics   *metrics
	verify    *verifier
	leader    leadership
	leaderNow *leaderWatch
	closeOnce sync.Once
	closeErr  error
}

// Server is a member of the Raft configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Open starts a node from its data directory: a node with existing state rejoins with it,
// a new node waits to be bootstrapped or added by the leader.
func Open(cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Layer == nil {
		return nil, errors.New("raftstore: Config needs a Layer")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{cfg: cfg, ctx: ctx, cancel: cancel}
	if !cfg.NoMetrics {
		s.metrics = newMetrics(s)
	}
	s.fsm = newFSM(limits{maxKey: cfg.MaxKeySize, maxValue: cfg.MaxValueSize}, historyBounds{events: cfg.HistoryEvents, bytes: cfg.HistoryBytes, age: cfg.HistoryAge}, s.metrics)
	s.mux = newMux(ctx, &s.wg, cfg.Layer, cfg.Secret, cfg.Logger)
	s.peers = &peers{m: s.mux, cli: map[string]*rpc.Client{}, dialing: map[string]*pendingDial{}}
	rpcSrv := rpc.NewServer()
	if err := rpcSrv.RegisterName("Store", &rpcService{s: s}); err != nil {
		cancel()
		return nil, err
	}
	s.mux.forward = func(c net.Conn) { rpcSrv.ServeConn(c) }
	fo := &failover{s: s}
	s.mux.raftLost = fo.peerConnLost

	if err := s.openRaft(); err != nil {
		cancel()
		cfg.Layer.Close()
		return nil, err
	}
	s.verify = &verifier{r: s.raft, ctx: ctx, wg: &s.wg}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.mux.serve()
	}()
	return s, nil
}

func (s *Store) openRaft() error {
	cfg := s.cfg
	d, err := openDisk(cfg)
	if err != nil {
		return err
	}
	logs, err := raft.NewLogCache(1024, d.log)
	if err != nil {
		d.Close()
		return err
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: cfg.RaftLog})
	s.transport = newCommitTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  raftStream{m: s.mux},
		MaxPool: 4,
		Timeout: 5 * time.Second,
		Logger:  hlog,
	}))
	s.fsm.onApplied = s.transport.applied
	notify := make(chan bool, 64) // raft blocks on it: consumed at once by watchLeadership
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	// Group commit: raft's leader loop drains every Apply waiting on its channel (up to
	// MaxAppendEntries) into one log write and one fsync. BatchApplyCh is left off: it
	// buffers the channel, and an Apply racing Shutdown can then enqueue a future that is
	// never answered.
	rc.MaxAppendEntries = 256
	rc.NotifyCh = notify
	rc.Logger = hlog
	rc.NoLegacyTelemetry = true
	r, err := raft.NewRaft(rc, s.fsm, logs, d.stable, d.snaps, s.transport)
	if err != nil {
		s.transport.Close()
		d.Close()
		return fmt.Errorf("raftstore: start raft: %w", err)
	}
	s.raft, s.disk = r, d
	s.transport.raft.Store(r)
	s.leaderNow = newLeaderWatch()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.watchLeadership(notify)
	}()
	go func() {
		defer s.wg.Done()
		s.leaderNow.follow(r, s.ctx.Done())
	}()
	return nil
}

// Bootstrap forms a new cluster from the given servers. Every server of the initial
// configuration may call it with the same list; it fails harmlessly on one that has state.
func (s *Store) Bootstrap(servers []Server) error {
	var c raft.Configuration
	for _, sv := range servers {
		suffrage := raft.Voter
		if !sv.Voter {
			suffrage = raft.Nonvoter
		}
		c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(sv.ID), Address: raft.ServerAddress(sv.Address), Suffrage: suffrage})
	}
	return s.raft.BootstrapCluster(c).Error()
}

// ID returns this node's ID; Addr the address peers reach it at.
func (s *Store) ID() string   { return s.cfg.ID }
func (s *Store) Addr() string { return s.cfg.Advertise }

// Close shuts the node down: watchers end with ErrClosed, raft stops, files are closed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// The listener first: a peer that sees this node's connections end finds its port
		// refusing, as after a crash, and need not wait out a heartbeat timeout.
		err := s.cfg.Layer.Close()
		err = errors.Join(err, s.raft.Shutdown().Error())
		s.cancel()
		s.peers.closeAll()
		err = errors.Join(err, s.transport.Close())
		s.mux.closeConns()
		s.wg.Wait()
		s.closeErr = errors.Join(err, s.disk.Close())
	})
	return s.closeErr
}

// Revision is the newest revision this node has applied.
func (s *Store) Revision() int64 {
	rev, _, _ := s.fsm.status()
	return rev
}

// ---- writes ----

// Txn applies ops atomically: all of them at one new revision, or none. A condition that
// fails gives an *OpError wrapping ErrConflict, ErrKeyExists or ErrNotFound.
func (s *Store) Txn(ctx context.Context, ops ...Op) (*TxnResult, error) {
	if err := checkOps(ops, s.fsm.limits); err != nil {
		return nil, err
	}
	start := time.Now()
	data := encodeTxn(ops)
	for {
		var res *TxnResult
		var err error
		tried, _ := s.raft.LeaderWithID()
		if s.raft.State() == raft.Leader {
			res, err = s.applyLocal(data)
		} else {
			res, err = s.forwardApply(ctx, data)
		}
		if errors.Is(err, ErrNotLeader) || errors.Is(err, errDial) {
			// Nothing was applied: wait for a (new) leader and try again.
			if werr := s.waitLeader(ctx, tried); werr != nil {
				return nil, werr
			}
			continue
		}
		if s.metrics != nil && err == nil {
			s.metrics.applyLatency.Observe(time.Since(start).Seconds())
		}
		return res, err
	}
}

// applyLocal proposes an entry on this node, which must lead.
func (s *Store) applyLocal(data []byte) (*TxnResult, error) {
	if len(data) < entryHeaderSize {
		return nil, fmt.Errorf("%w: short entry", ErrInvalid)
	}
	entry := make([]byte, len(data))
	copy(entry, data)
	stampTime(entry, time.Now().UnixNano())
	f := s.raft.Apply(entry, s.cfg.ApplyTimeout)
	if res, ok := earlyAck(s.fsm, entry, f); ok { // only in the skiffbroken build
		return res, nil
	}
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	r, ok := f.Response().(*applyResult)
	if !ok || r == nil {
		return nil, fmt.Errorf("%w: no result for entry", ErrCorruptEntry)
	}
	if r.err != nil {
		return nil, r.err
	}
	return &r.res, nil
}

// raftError maps raft's errors to the store's sentinels. Only a lost leadership after the
// entry was dispatched leaves the outcome unknown.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrIndeterminate, err)
	}
	return err
}

func (s *Store) forwardApply(ctx context.Context, data []byte) (*TxnResult, error) {
	addr, _ := s.raft.LeaderWithID()
	if addr == "" {
		return nil, ErrNotLeader
	}
	var reply wire.ApplyReply
	if err := s.peers.call(ctx, s.leaderNow.since(addr), string(addr), "Store.Apply", &wire.ApplyArgs{Data: data}, &reply); err != nil {
		if errors.Is(err, errBroken) || errors.Is(err, errLeaderChanged) {
			return nil, fmt.Errorf("%w: %v", ErrIndeterminate, err)
		}
		return nil, err
	}
	if err := decodeApplyErr(&reply); err != nil {
		return nil, err
	}
	res := &TxnResult{Revision: reply.Revision, Results: make([]OpResult, len(reply.Results))}
	for i, r := range reply.Results {
		res.Results[i] = OpResult{KV: KV(r)}
	}
	return res, nil
}

// waitLeader waits, up to ApplyTimeout, until a call that failed at leader tried ("" for
// none known) is worth making again: another leader is known, or tried still is after
// retryPause (a dial can fail once). It wakes on raft's leader observations rather than
// polling: during an election hundreds of requests wait here, and a 10 ms ticker each was
// a fifth of a starved server's CPU, and retried a leader that had just said it no longer
// led a hundred times a second.
func (s *Store) waitLeader(ctx context.Context, tried raft.ServerAddress) error {
	deadline := time.NewTimer(s.cfg.ApplyTimeout)
	defer deadline.Stop()
	// raft drops an observation rather than block on a full channel: look now and then anyway.
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	var pause <-chan time.Time
	for {
		next := s.leaderNow.next()
		addr, _ := s.raft.LeaderWithID()
		if addr != "" && addr != tried {
			return nil
		}
		if addr != "" && pause == nil {
			pause = time.After(retryPause)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return ErrClosed
		case <-deadline.C:
			return ErrNoLeader
		case <-pause:
			return nil
		case <-next:
		case <-poll.C:
		}
	}
}

// retryPause is how long a call waits before trying the same leader again.
const retryPause = 20 * time.Millisecond

// Create writes a key that must not exist.
func (s *Store) Create(ctx context.Context, key string, value []byte) (KV, error) {
	return s.single(ctx, Op{Kind: OpCreate, Key: key, Value: value})
}

// Update writes an existing key; with ifModRevision non-zero, only if it is at that revision.
func (s *Store) Update(ctx context.Context, key string, value []byte, ifModRevision int64) (KV, error) {
	return s.single(ctx, Op{Kind: OpUpdate, Key: key, Value: value, IfModRevision: ifModRevision})
}

// Put writes a key whether or not it exists.
func (s *Store) Put(ctx context.Context, key string, value []byte) (KV, error) {
	return s.single(ctx, Op{Kind: OpPut, Key: key, Value: value})
}

// Delete removes a key and returns it as it was; with ifModRevision non-zero, only if it is
// at that revision.
func (s *Store) Delete(ctx context.Context, key string, ifModRevision int64) (KV, error) {
	return s.single(ctx, Op{Kind: OpDelete, Key: key, IfModRevision: ifModRevision})
}

func (s *Store) single(ctx context.Context, op Op) (KV, error) {
	res, err := s.Txn(ctx, op)
	if err != nil {
		var oe *OpError
		if errors.As(err, &oe) { // a single op's error is just its sentinel, with context
			return KV{}, fmt.Errorf("%w: %s %q", oe.Err, op.Kind, op.Key)
		}
		return KV{}, err
	}
	return res.Results[0].KV, nil
}

// ---- reads ----

// Get returns a key. By default the read is linearizable.
func (s *Store) Get(ctx context.Context, key string, opts ReadOptions) (KV, error) {
	if !opts.Stale {
		if err := s.ReadBarrier(ctx); err != nil {
			return KV{}, err
		}
	}
	kv, _, err := s.fsm.get(key)
	return kv, err
}

// List returns keys under prefix, in key order, one page at a time.
func (s *Store) List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error) {
	rev, start := opts.Revision, ""
	if opts.Continue != "" {
		t, err := decodeContinue(opts.Continue)
		if err != nil {
			return ListResult{}, err
		}
		rev, start = t.Rev, t.Start
	}
	if rev == 0 && !opts.Stale {
		if err := s.ReadBarrier(ctx); err != nil {
			return ListResult{}, err
		}
	}
	if rev != 0 {
		if err := s.WaitRevision(ctx, rev); err != nil {
			return ListResult{}, err
		}
	}
	return s.fsm.list(prefix, start, rev, opts.Limit, opts.Skip)
}

// Watch streams changes under prefix with revisions above from (zero: from now on).
// It is served from this node's replica; a from older than the history fails with a
// *CompactedError. Watching from a revision this node has not reached yet waits for it.
func (s *Store) Watch(ctx context.Context, prefix string, from int64) (*Watcher, error) {
	return s.fsm.watch(ctx, s.ctx, &s.wg, prefix, from, watchConfig{buffer: s.cfg.WatchBuffer, maxLag: uint64(s.cfg.WatchMaxLag)})
}

// ReadBarrier returns once this node's replica holds every write acknowledged before the
// call (ReadIndex): the leader confirms it still leads; a follower asks the leader for its
// applied index and waits until it has applied that far.
func (s *Store) ReadBarrier(ctx context.Context) error {
	for {
		var idx uint64
		var err error
		tried, _ := s.raft.LeaderWithID()
		if s.raft.State() == raft.Leader {
			idx, err = s.leaderReadIndex(ctx)
		} else {
			idx, err = s.forwardReadIndex(ctx)
		}
		if errors.Is(err, ErrNotLeader) || errors.Is(err, errDial) || errors.Is(err, errBroken) || errors.Is(err, errLeaderChanged) {
			if werr := s.waitLeader(ctx, tried); werr != nil {
				return werr
			}
			continue
		}
		if err != nil {
			return err
		}
		return s.waitApplied(ctx, idx)
	}
}

// leaderReadIndex is the index a linearizable read must wait for. The leader's applied index
// covers every write it acknowledged, and, once its post-election barrier has completed,
// every write an earlier leader acknowledged. Confirming leadership after reading it rules
// out a newer leader having acknowledged anything meanwhile.
func (s *Store) leaderReadIndex(ctx context.Context) (uint64, error) {
	if !s.leader.ready(s.raft.CurrentTerm()) {
		if err := s.leader.waitReady(ctx, s.raft); err != nil {
			return 0, err
		}
	}
	_, applied, _ := s.fsm.status()
	if err := s.verify.verify(ctx); err != nil {
		return 0, err
	}
	return applied, nil
}

func (s *Store) forwardReadIndex(ctx context.Context) (uint64, error) {
	addr, _ := s.raft.LeaderWithID()
	if addr == "" {
		return 0, ErrNotLeader
	}
	var reply wire.ReadIndexReply
	if err := s.peers.call(ctx, s.leaderNow.since(addr), string(addr), "Store.ReadIndex", struct{}{}, &reply); err != nil {
		return 0, err
	}
	return reply.Index, codeError(reply.ErrCode, reply.ErrMsg)
}

// waitApplied waits until this node's FSM has applied the entry at index.
func (s *Store) waitApplied(ctx context.Context, index uint64) error {
	return s.waitFSM(ctx, func(f *fsm) bool { return f.applied >= index })
}

// WaitRevision waits until this node has applied revision rev.
func (s *Store) WaitRevision(ctx context.Context, rev int64) error {
	return s.waitFSM(ctx, func(f *fsm) bool { return f.rev >= rev })
}

// waitFSM waits until done holds of the FSM (checked under its read lock), waking on each
// applied batch.
func (s *Store) waitFSM(ctx context.Context, done func(*fsm) bool) error {
	for {
		s.fsm.mu.RLock()
		ok, ch := done(s.fsm), s.fsm.notify
		s.fsm.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
}

// verifier coalesces leadership checks: every caller waits for a VerifyLeader round that
// started after it arrived, and one round serves all who arrived before it.
type verifier struct {
	r       *raft.Raft
	ctx     context.Context // the store's: ends the wait on Close
	wg      *sync.WaitGroup
	mu      sync.Mutex
	pending []chan error
	running bool
}

func (v *verifier) verify(ctx context.Context) error {
	ch := make(chan error, 1)
	v.mu.Lock()
	v.pending = append(v.pending, ch)
	if !v.running {
		v.running = true
		v.wg.Add(1)
		go v.run()
	}
	v.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// verifyOnce runs one VerifyLeader round. raft buffers verify requests, so one that races
// Shutdown may never be answered: the wait ends with the store instead, and the goroutine
// blocked on it (at most one per closed store) is abandoned.
func (v *verifier) verifyOnce() error {
	ch := make(chan error, 1)
	go func() { ch <- v.r.VerifyLeader().Error() }()
	select {
	case err := <-ch:
		return err
	case <-v.ctx.Done():
		return ErrClosed
	}
}

func (v *verifier) run() {
	defer v.wg.Done()
	for {
		v.mu.Lock()
		batch := v.pending
		v.pending = nil
		if len(batch) == 0 {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		err := v.verifyOnce()
		if err != nil {
			err = raftError(err)
			if errors.Is(err, ErrIndeterminate) { // nothing was written: just not leader
				err = fmt.Errorf("%w: %v", ErrNotLeader, err)
			}
		}
		for _, ch := range batch {
			ch <- err
		}
	}
}

// ---- leadership ----

// Leadership is a change in this node's Raft role. Term tells apart two terms of leadership
// even if the loss in between was not observed.
type Leadership struct {
	Leader bool
	Term   uint64
}

// leadership tracks whether this node leads and has finished its post-election barrier, and
// publishes changes to subscribers, each of whom always sees the latest state.
type leadership struct {
	readyTerm atomic.Uint64 // term whose barrier completed while leading; 0 when not leading
	mu        sync.Mutex
	subs      []chan Leadership
	last      Leadership
	changed   chan struct{}
}

func (l *leadership) ready(term uint64) bool { return term != 0 && l.readyTerm.Load() == term }

// waitReady waits for the post-election barrier, or for the node to stop leading.
func (l *leadership) waitReady(ctx context.Context, r *raft.Raft) error {
	for {
		l.mu.Lock()
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		if r.State() != raft.Leader {
			return ErrNotLeader
		}
		if l.ready(r.CurrentTerm()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// publishIf publishes a gained leadership unless it was lost meanwhile (ctx cancelled); the
// check and the publication are atomic with respect to publish, so a loss always wins.
func (l *leadership) publishIf(ctx context.Context, v Leadership) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	l.readyTerm.Store(v.Term)
	l.publishLocked(v)
}

func (l *leadership) publish(v Leadership) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publishLocked(v)
}

func (l *leadership) publishLocked(v Leadership) {
	l.last = v
	for _, ch := range l.subs {
		select { // conflate: drop the unread older state, keep the newest
		case <-ch:
		default:
		}
		ch <- v
	}
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// LeadershipChanges returns a channel that always holds this node's newest leadership state
// (a new subscriber first receives the current one). Leader=true is sent only after the
// post-election barrier: all earlier writes are applied here. It is built on raft's NotifyCh,
// which never drops a change (never LeaderCh, which may).
func (s *Store) LeadershipChanges() <-chan Leadership {
	ch := make(chan Leadership, 1)
	s.leader.mu.Lock()
	ch <- s.leader.last
	s.leader.subs = append(s.leader.subs, ch)
	s.leader.mu.Unlock()
	return ch
}

// IsLeader reports whether this node leads and is ready to serve as leader.
func (s *Store) IsLeader() bool {
	return s.raft.State() == raft.Leader && s.leader.ready(s.raft.CurrentTerm())
}

// Leader returns the current leader's ID and address, empty when none is known.
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// watchLeadership consumes raft's NotifyCh at once (raft blocks on it) and runs the
// post-election barrier per term in its own goroutine, cancelled when leadership is lost.
func (s *Store) watchLeadership(notify <-chan bool) {
	stopBarrier := func() {}
	defer func() { stopBarrier() }()
	for {
		select {
		case <-s.ctx.Done():
			return
		case isLeader := <-notify:
			stopBarrier()
			if s.metrics != nil {
				s.metrics.leaderChanges.Inc()
			}
			if !isLeader {
				s.leader.readyTerm.Store(0)
				s.leader.publish(Leadership{Leader: false, Term: s.raft.CurrentTerm()})
				continue
			}
			ctx, cancel := context.WithCancel(s.ctx)
			stopBarrier = cancel
			term := s.raft.CurrentTerm()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil || ctx.Err() != nil {
					return
				}
				if s.raft.State() != raft.Leader || s.raft.CurrentTerm() != term {
					return
				}
				s.leader.publishIf(ctx, Leadership{Leader: true, Term: term})
			}()
		}
	}
}
