// Package groupwrite coalesces a connection's writes into fewer system calls, as a
// database's group commit coalesces fsyncs: a Write copies its bytes into the connection's
// pending buffer and returns; one goroutine at a time writes everything pending to the
// socket, and whatever is written while that system call runs goes out with the next one.
//
// Why: an API server's watch fan-out sends the same small event to many HTTP/2 streams of a
// connection, and Go's HTTP/2 server flushes its buffered frames to the TLS connection
// whenever its write queue runs empty, which with handlers waking one by one is nearly once
// per event and stream. Each flush is a TLS record and a loopback write system call (a few
// microseconds each, on both ends); with a thousand watchers that was a third of a server's
// CPU. Nothing waits on a timer: a lone write goes out at once, and coalescing happens only
// while a previous write is still in the kernel, that is exactly when writes queue up.
package groupwrite

import (
	"net"
	"os"
	"sync"
	"time"
)

// maxPending bounds a connection's unwritten bytes: a writer beyond it waits for the
// socket, so a peer that stops reading still pushes back as it would without the buffer.
const maxPending = 256 << 10

// Buffers are shared by all connections through a pool and held only while bytes wait, so
// that thousands of mostly idle node connections cost nothing between their bursts.
// poolMax is the largest buffer put back (a list's big response is left to the collector).
const poolMax = 64 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func getBuffer() []byte { return (*buffers.Get().(*[]byte))[:0] }

func putBuffer(b []byte) {
	if cap(b) <= poolMax {
		b = b[:0]
		buffers.Put(&b)
	}
}

// closeLinger bounds how long a closed connection keeps writing what it had accepted to a
// peer that reads slowly, as the kernel's own send buffer outlives a close.
const closeLinger = 30 * time.Second

// Listener wraps every accepted connection's writes (see the package comment). Wrap the
// TCP listener, beneath TLS, so that a record is the unit coalesced.
type Listener struct{ net.Listener }

// Accept returns the next connection, its writes grouped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewConn(c), nil
}

// Conn is a net.Conn whose writes are grouped. Reads and addresses are the wrapped
// connection's. Bytes Write has accepted are written as a socket's kernel buffer would send
// them: a write deadline set later does not cut them off (crypto/tls sets one of now right
// after its close_notify alert, and the alert and the response before it must still go
// out), and Close returns at once while they drain (for at most closeLinger). A batch is
// written under the deadline in force when its first byte was accepted; a Write after its
// deadline fails as a socket's would.
type Conn struct {
	net.Conn
	mu        sync.Mutex
	drained   sync.Cond // signalled when pending bytes shrink, the writer stops, or a deadline passes
	pending   []byte    // nil while nothing waits
	pendingDL time.Time // the write deadline in force when pending's first byte was accepted
	deadline  time.Time // the write deadline set last
	applied   time.Time // the deadline the socket has (writeOut's, kept across its runs)
	dlTimer   *time.Timer
	writing   bool  // a goroutine is writing pending to the socket
	err       error // the first write error: every later Write returns it
	closed    bool
	linger    *time.Timer // closes the socket if draining after Close takes too long
}

// NewConn wraps c.
func NewConn(c net.Conn) *Conn {
	gc := &Conn{Conn: c}
	gc.drained.L = &gc.mu
	return gc
}

func expired(dl time.Time) bool { return !dl.IsZero() && !time.Now().Before(dl) }

// Write queues p to be written and returns without waiting for the socket, unless the
// connection already has maxPending bytes queued. An error of an earlier system call is
// returned by the next Write (the caller learns the connection is broken, as TCP's own
// buffering would tell it no sooner).
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closed && !expired(c.deadline) && len(c.pending) >= maxPending {
		c.drained.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closed:
		return 0, net.ErrClosed
	case expired(c.deadline):
		return 0, os.ErrDeadlineExceeded
	case len(p) == 0: // nothing to send: must not open a batch under the current deadline
		return 0, nil
	}
	if c.pending == nil {
		c.pending, c.pendingDL = getBuffer(), c.deadline
	}
	c.pending = append(c.pending, p...)
	if !c.writing {
		c.writing = true
		go c.writeOut()
	}
	return len(p), nil
}

// writeOut writes pending bytes until none are left, one system call per batch, then
// closes the socket if Close was called meanwhile.
func (c *Conn) writeOut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) > 0 && c.err == nil {
		b, dl := c.pending, c.pendingDL
		c.pending = nil // writes meanwhile start the next batch
		c.mu.Unlock()
		var err error
		if !dl.Equal(c.applied) { // only writeOut touches applied, one run at a time
			err = c.Conn.SetWriteDeadline(dl)
			c.applied = dl
		}
		if err == nil {
			_, err = c.Conn.Write(b)
		}
		putBuffer(b)
		c.mu.Lock()
		if err != nil {
			c.err = err
		}
		c.drained.Broadcast()
	}
	c.writing = false
	c.drained.Broadcast()
	if c.closed {
		c.linger.Stop()
		_ = c.Conn.Close()
	}
}

// SetWriteDeadline sets the deadline of the bytes written from now on.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if c.dlTimer != nil {
		c.dlTimer.Stop()
		c.dlTimer = nil
	}
	if !t.IsZero() { // a Write waiting for room gives up when it passes
		c.dlTimer = time.AfterFunc(time.Until(t), func() {
			c.mu.Lock()
			c.drained.Broadcast()
			c.mu.Unlock()
		})
	}
	return nil
}

// SetDeadline sets the read deadline, and the write deadline as SetWriteDeadline does.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// Close closes the connection; bytes already accepted are still written, for at most
// closeLinger, before the socket closes.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.closed = true
	c.drained.Broadcast() // writers waiting for room give up
	if c.dlTimer != nil {
		c.dlTimer.Stop()
	}
	if c.writing {
		c.linger = time.AfterFunc(closeLinger, func() { _ = c.Conn.Close() }) // ends a blocked system call
		return nil
	}
	return c.Conn.Close()
}
