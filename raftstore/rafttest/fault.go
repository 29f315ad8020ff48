// Package rafttest builds real raftstore clusters for tests: several nodes in one process,
// each with its own data directory and TCP port on 127.0.0.1, and a network layer that can
// partition, delay or break a node's traffic.
package rafttest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
)

// FaultLayer wraps a Layer and injects network faults into every connection that passes
// through it, dialled or accepted. Since every connection between two nodes passes through
// one of their layers, isolating one node's layer partitions it from all the others.
type FaultLayer struct {
	raftstore.Layer
	isolated atomic.Bool
	silent   atomic.Bool
	delay    atomic.Int64  // nanoseconds added before each write
	dropPerM atomic.Uint32 // per-million chance that a write breaks its connection

	mu    sync.Mutex
	conns map[*faultConn]struct{}
}

var _ raftstore.Layer = (*FaultLayer)(nil)

// NewFaultLayer wraps l.
func NewFaultLayer(l raftstore.Layer) *FaultLayer {
	return &FaultLayer{Layer: l, conns: map[*faultConn]struct{}{}}
}

var errIsolated = errors.New("rafttest: node is partitioned")

// Isolate cuts the node off (true) or heals it (false). Cutting closes live connections and
// makes new ones fail: dials hang until their timeout as into a black hole, and accepted
// connections are closed at once.
func (f *FaultLayer) Isolate(on bool) {
	f.isolated.Store(on)
	if on {
		f.mu.Lock()
		for c := range f.conns {
			c.Conn.Close()
		}
		f.mu.Unlock()
	}
}

// Silence makes the node a black hole (true) or heals it (false): connections stay open
// but nothing it sends arrives and nothing sent to it is read, as when its process is
// paused (SIGSTOP) or a firewall drops its packets. Unlike Isolate, no peer sees an error;
// they can only notice the silence.
func (f *FaultLayer) Silence(on bool) { f.silent.Store(on) }

// SetDelay adds latency to every write.
func (f *FaultLayer) SetDelay(d time.Duration) { f.delay.Store(int64(d)) }

// SetDrop makes each write break its connection with probability p (0 to 1), the
// connection-level effect of packet loss that TCP could not hide.
func (f *FaultLayer) SetDrop(p float64) { f.dropPerM.Store(uint32(p * 1e6)) }

func (f *FaultLayer) Accept() (net.Conn, error) {
	for {
		c, err := f.Layer.Accept()
		if err != nil {
			return nil, err
		}
		if f.isolated.Load() {
			c.Close()
			continue
		}
		return f.track(c), nil
	}
}

func (f *FaultLayer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if f.isolated.Load() {
		<-ctx.Done()
		return nil, errIsolated
	}
	c, err := f.Layer.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return f.track(c), nil
}

func (f *FaultLayer) track(c net.Conn) net.Conn {
	fc := &faultConn{Conn: c, f: f}
	f.mu.Lock()
	f.conns[fc] = struct{}{}
	f.mu.Unlock()
	return fc
}

type faultConn struct {
	net.Conn
	f *FaultLayer
}

func (c *faultConn) Write(b []byte) (int, error) {
	if c.f.isolated.Load() {
		c.Conn.Close()
		return 0, errIsolated
	}
	if c.f.silent.Load() {
		return len(b), nil
	}
	if d := c.f.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if p := c.f.dropPerM.Load(); p > 0 && rand.Uint32N(1e6) < p {
		c.Conn.Close()
		return 0, errors.New("rafttest: connection dropped")
	}
	return c.Conn.Write(b)
}

func (c *faultConn) Read(b []byte) (int, error) {
	if c.f.isolated.Load() {
		c.Conn.Close()
		return 0, errIsolated
	}
	for {
		n, err := c.Conn.Read(b)
		if err != nil || !c.f.silent.Load() {
			return n, err
		}
	}
}

func (c *faultConn) Close() error {
	c.f.mu.Lock()
	delete(c.f.conns, c)
	c.f.mu.Unlock()
	return c.Conn.Close()
}
