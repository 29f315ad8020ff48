package raftstore

import (
	"context"
	"errors"
	"fmt"
	"github.com/hashicorp/raft"
	"github.com/skiff-dev/skiff/raftstore/internal/wire"
	"net/rpc"
	"sync"
	"time"
)

// The forwarding service: followers send writes and read-index requests to the leader over
// the mux's authenticated connections, and the leader asks peers for their progress.

// PeerStatus is one server's own view of its progress.
type PeerStatus = wire.Status

// rpcService is registered with net/rpc; its methods run on the receiving node.
type rpcService struct{ s *Store }

func (r *rpcService) Apply(args *wire.ApplyArgs, reply *wire.ApplyReply) error {
	res, err := r.s.applyLocal(args.Data)
	if err != nil {
		encodeApplyErr(err, reply)
		return nil
	}
	reply.Revision = res.Revision
	for _, o := range res.Results {
		reply.Results = append(reply.Results, wire.ResultKV(o.KV))
	}
	return nil
}

func (r *rpcService) ReadIndex(_ struct{}, reply *wire.ReadIndexReply) error {
	ctx, cancel := context.WithTimeout(r.s.ctx, r.s.cfg.ApplyTimeout)
	defer cancel()
	idx, err := r.s.leaderReadIndex(ctx)
	reply.Index = idx
	if err != nil {
		reply.ErrCode, reply.ErrMsg = errorCode(err), err.Error()
	}
	return nil
}

// Campaign starts an election on this node at once: a follower that saw the leader die
// chose it as the successor (failover.go).
func (r *rpcService) Campaign(_ struct{}, _ *struct{}) error {
	if r.s.raft.State() != raft.Follower {
		return nil // already campaigning, or leading: nothing to start
	}
	return r.s.campaign()
}

func (r *rpcService) Status(_ struct{}, reply *PeerStatus) error {
	*reply = r.s.selfStatus()
	return nil
}

func encodeApplyErr(err error, reply *wire.ApplyReply) {
	reply.ErrCode, reply.ErrMsg = errorCode(err), err.Error()
	var oe *OpError
	if errors.As(err, &oe) {
		reply.IsOpErr, reply.OpIndex, reply.OpKey = true, oe.Index, oe.Key
		reply.ErrCode = errorCode(oe.Err)
	}
}

func decodeApplyErr(reply *wire.ApplyReply) error {
	err := codeError(reply.ErrCode, reply.ErrMsg)
	if err == nil {
		return nil
	}
	if reply.IsOpErr {
		return &OpError{Index: reply.OpIndex, Key: reply.OpKey, Err: fmt.Errorf("%w (%s)", err, reply.ErrMsg)}
	}
	return fmt.Errorf("%w (from leader: %s)", err, reply.ErrMsg)
}

// peers keeps one multiplexed net/rpc client per peer address.
type peers struct {
	m       *mux
	mu      sync.Mutex
	cli     map[string]*rpc.Client
	dialing map[string]*pendingDial
}

// pendingDial is a dial in progress that later callers wait for instead of dialing too:
// after a leader change hundreds of forwarded requests find no client at once, and each
// dial is a full mutual-TLS handshake on both ends (it was a third of a CPU-starved
// server's time).
type pendingDial struct {
	done chan struct{}
	c    *rpc.Client
	err  error
}

func (p *peers) client(ctx context.Context, addr string) (*rpc.Client, error) {
	p.mu.Lock()
	if c := p.cli[addr]; c != nil {
		p.mu.Unlock()
		return c, nil
	}
	d := p.dialing[addr]
	if d == nil {
		d = &pendingDial{done: make(chan struct{})}
		p.dialing[addr] = d
		p.mu.Unlock()
		// The dial is shared, so it is not bound to this caller's context.
		dctx, cancel := context.WithTimeout(p.m.ctx, 2*time.Second)
		conn, err := p.m.dial(dctx, addr, connForward)
		cancel()
		p.mu.Lock()
		delete(p.dialing, addr)
		switch {
		case err != nil:
			d.err = err
		case p.m.ctx.Err() != nil: // closeAll has run
			conn.Close()
			d.err = ErrClosed
		default:
			d.c = rpc.NewClient(conn)
			p.cli[addr] = d.c
		}
		p.mu.Unlock()
		close(d.done)
	} else {
		p.mu.Unlock()
	}
	select {
	case <-d.done:
		return d.c, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *peers) drop(addr string, c *rpc.Client) {
	p.mu.Lock()
	if p.cli[addr] == c {
		delete(p.cli, addr)
	}
	p.mu.Unlock()
	c.Close()
}

func (p *peers) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.cli {
		c.Close()
		delete(p.cli, addr)
	}
}

// errDial marks a call that never left this node: safe to retry. errBroken marks a call
// whose connection broke after the request may have been sent. errLeaderChanged marks a
// call to the leader abandoned because the leader changed while it waited: it may have been
// applied.
var (
	errDial          = errors.New("raftstore: could not reach peer")
	errBroken        = errors.New("raftstore: peer connection broke")
	errLeaderChanged = errors.New("raftstore: the leader changed while the call waited")
)

// call makes one RPC, bounded by ctx and abandoned when abort is closed (nil: never). A
// broken or abandoned connection is dropped so the next call dials again: one to a paused or
// partitioned peer may never answer again.
func (p *peers) call(ctx context.Context, abort <-chan struct{}, addr, method string, args, reply any) error {
	c, err := p.client(ctx, addr)
	if err != nil {
		return fmt.Errorf("%w: %v", errDial, err)
	}
	select {
	case <-abort: // not sent yet: as safe to retry as a failed dial
		return fmt.Errorf("%w: %v", errDial, errLeaderChanged)
	default:
	}
	done := c.Go(method, args, reply, make(chan *rpc.Call, 1)).Done
	select {
	case call := <-done:
		if call.Error != nil {
			p.drop(addr, c)
			return fmt.Errorf("%w: %v", errBroken, call.Error)
		}
		return nil
	case <-abort:
		p.drop(addr, c)
		return errLeaderChanged
	case <-ctx.Done():
		return ctx.Err()
	}
}
