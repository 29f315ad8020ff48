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

// drainWait bounds how long Close and a new write deadline wait for pending bytes to reach
// the socket (a peer that stopped reading must not hold them up for ever).
const drainWait = 5 * time.Second

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
// connection's. A write deadline applies to the bytes written after it is set: setting one
// first waits for the bytes already accepted, which a plain socket would already hold in
// the kernel (crypto/tls sets a deadline of now right after its close_notify alert, and
// the alert and the response before it must still go out).
type Conn struct {
	net.Conn
	mu       sync.Mutex
	drained  sync.Cond // signalled when pending bytes shrink or the writer stops
	pending  []byte    // nil while nothing waits
	writing  bool      // a goroutine is writing pending to the socket
	err      error     // the first write error: every later Write returns it
	closeErr error
	closed   bool
}

// NewConn wraps c.
func NewConn(c net.Conn) *Conn {
	gc := &Conn{Conn: c}
	gc.drained.L = &gc.mu
	return gc
}

// Write queues p to be written and returns without waiting for the socket, unless the
// connection already has maxPending bytes queued. An error of an earlier system call is
// returned by the next Write (the caller learns the connection is broken, as TCP's own
// buffering would tell it no sooner).
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closed && len(c.pending) >= maxPending {
		c.drained.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.pending == nil {
		c.pending = getBuffer()
	}
	c.pending = append(c.pending, p...)
	if !c.writing {
		c.writing = true
		go c.writeOut()
	}
	return len(p), nil
}

// writeOut writes pending bytes until none are left, one system call per batch.
func (c *Conn) writeOut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) > 0 && c.err == nil {
		b := c.pending
		c.pending = nil // writes meanwhile start the next batch
		c.mu.Unlock()
		_, err := c.Conn.Write(b)
		putBuffer(b)
		c.mu.Lock()
		if err != nil {
			c.err = err
		}
		c.drained.Broadcast()
	}
	c.writing = false
	c.drained.Broadcast()
}

// drainLocked waits, with mu held, until no write is in flight or drainWait has passed.
func (c *Conn) drainLocked() {
	if !c.writing {
		return
	}
	timedOut := false
	t := time.AfterFunc(drainWait, func() {
		c.mu.Lock()
		timedOut = true
		c.drained.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	for c.writing && !timedOut {
		c.drained.Wait()
	}
}

// SetWriteDeadline sets the deadline of the writes after the bytes already accepted.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.drainLocked()
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets the read deadline, and the write deadline as SetWriteDeadline does.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.drainLocked()
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// Close writes what is pending (waiting at most drainWait), then closes the connection;
// closing it also ends a system call still blocked on a peer that does not read.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.closeErr
	}
	c.closed = true
	c.drained.Broadcast() // writers waiting for room give up
	c.drainLocked()
	c.mu.Unlock()
	err := c.Conn.Close()
	c.mu.Lock()
	c.closeErr = err
	c.mu.Unlock()
	return err
}
