package raftstore

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Layer is the network under the store: a listener for peers' connections and a dialer to
// reach them (STYLE.md practice 4). The cluster package passes a mutual-TLS layer; tests
// pass one that drops, delays or blackholes traffic.
type Layer interface {
	net.Listener
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// TCPLayer is a plain TCP Layer.
type TCPLayer struct {
	net.Listener
}

// ListenTCP opens a plain TCP layer on addr (use 127.0.0.1:0 for a free port).
func ListenTCP(addr string) (*TCPLayer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &TCPLayer{Listener: ln}, nil
}

func (l *TCPLayer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// Connection kinds on the shared layer. Each connection starts with its kind byte and the
// SHA-256 of the cluster secret, so a stray or unauthenticated connection is dropped before
// it reaches raft or the forwarding service.
const (
	connRaft    byte = 'R'
	connForward byte = 'F'
)

type mux struct {
	layer   Layer
	proof   [sha256.Size]byte
	raftCh  chan net.Conn
	forward func(net.Conn)
	// raftLost is told when an accepted Raft connection ends (fast failover).
	raftLost func()
	log      *slog.Logger
	ctx      context.Context
	wg       *sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // accepted connections, closed on shutdown
}

func newMux(ctx context.Context, wg *sync.WaitGroup, layer Layer, secret []byte, log *slog.Logger) *mux {
	return &mux{
		layer:  layer,
		proof:  sha256.Sum256(append([]byte("skiff-raftstore-v1:"), secret...)),
		raftCh: make(chan net.Conn, 16),
		conns:  map[net.Conn]struct{}{},
		log:    log,
		ctx:    ctx,
		wg:     wg,
	}
}

// serve accepts connections until the layer is closed.
func (m *mux) serve() {
	for {
		conn, err := m.layer.Accept()
		if err != nil {
			if m.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				m.log.Warn("raftstore: accept failed", "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		m.mu.Lock()
		if m.ctx.Err() != nil {
			m.mu.Unlock()
			conn.Close()
			return
		}
		m.conns[conn] = struct{}{}
		m.mu.Unlock()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(conn)
		}()
	}
}

// closeConns closes every accepted connection, ending the goroutines serving them, and
// every Raft connection this node dialled: raft's transport keeps idle ones in its pool
// past its Close, and a peer should see this node's connections end as after a crash.
func (m *mux) closeConns() {
	m.mu.Lock()
	conns := m.conns
	m.conns = map[net.Conn]struct{}{}
	m.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// trackedConn is a dialled connection that closeConns will close.
type trackedConn struct {
	net.Conn
	m *mux
}

func (c *trackedConn) Close() error {
	c.m.forget(c)
	return c.Conn.Close()
}

func (m *mux) forget(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

func (m *mux) route(conn net.Conn) {
	var hdr [1 + sha256.Size]byte
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if subtle.ConstantTimeCompare(hdr[1:], m.proof[:]) != 1 {
		m.log.Warn("raftstore: rejected a connection with a wrong cluster secret", "remote", conn.RemoteAddr())
		conn.Close()
		return
	}
	switch hdr[0] {
	case connRaft:
		var rc net.Conn = conn
		if m.raftLost != nil {
			rc = &lossConn{Conn: conn, lost: m.raftLost}
		}
		select {
		case m.raftCh <- rc:
		case <-m.ctx.Done():
			conn.Close()
		}
	case connForward:
		m.forward(conn)
		m.forget(conn)
	default:
		conn.Close()
	}
}

func (m *mux) dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	conn, err := m.layer.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	hdr := append([]byte{kind}, m.proof[:]...)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write(hdr); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// raftStream adapts the mux to raft's StreamLayer.
type raftStream struct{ m *mux }

var _ raft.StreamLayer = raftStream{}

func (r raftStream) Accept() (net.Conn, error) {
	select {
	case c := <-r.m.raftCh:
		return c, nil
	case <-r.m.ctx.Done():
		return nil, fmt.Errorf("raftstore: %w", net.ErrClosed)
	}
}

func (r raftStream) Close() error   { return nil } // the store closes the layer
func (r raftStream) Addr() net.Addr { return r.m.layer.Addr() }

func (r raftStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(r.m.ctx, timeout)
	defer cancel()
	conn, err := r.m.dial(ctx, string(addr), connRaft)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: conn, m: r.m}
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if r.m.ctx.Err() != nil {
		conn.Close()
		return nil, fmt.Errorf("raftstore: %w", net.ErrClosed)
	}
	r.m.conns[tc] = struct{}{}
	return tc, nil
}
