package groupwrite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, the server end grouped.
func tcpPair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := Listener{ln}.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server.(*Conn), client
}

// writeChunks writes b in Writes of at most n bytes.
func writeChunks(c net.Conn, b []byte, n int) error {
	for ; len(b) > 0; b = b[min(len(b), n):] {
		if _, err := c.Write(b[:min(len(b), n)]); err != nil {
			return err
		}
	}
	return nil
}

// readsExactly reads c to its end and fails unless that is want.
func readsExactly(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
}

// Every Write (9 bytes) arrives whole, in the order the writer made it, whatever the coalescing.
func TestConcurrentWritesArriveWholeAndInOrder(t *testing.T) {
	server, client := tcpPair(t)
	const writers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := fmt.Fprintf(server, "<%d:%05d>", w, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); server.Close() }()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	for len(got) > 0 {
		var w, i int
		if _, err := fmt.Sscanf(string(got[:9]), "<%d:%05d>", &w, &i); err != nil {
			t.Fatalf("torn write at %q: %v", got[:min(len(got), 20)], err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got message %d, want %d", w, i, next[w])
		}
		next[w]++
		got = got[9:]
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d of %d messages arrived", w, n, each)
		}
	}
}

// A peer that stops reading pushes back: Write blocks once maxPending bytes wait, and goes
// on when the peer reads again.
func TestWriteBlocksWhileThePeerDoesNotRead(t *testing.T) {
	a, b := net.Pipe() // unbuffered: nothing leaves a until b reads
	c := NewConn(a)
	defer c.Close()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	wrote := make(chan int, 100)
	go func() {
		for i := 1; i <= 10; i++ {
			if _, err := c.Write(chunk); err != nil {
				close(wrote)
				return
			}
			wrote <- i
		}
		close(wrote)
	}()
	var n int
	for settled := false; !settled; {
		select {
		case i := <-wrote:
			n = i
		case <-time.After(200 * time.Millisecond):
			settled = true
		}
	}
	// The socket write in flight holds at most what was pending when it started, and
	// Write refuses more once maxPending wait: 64 KiB writes stop well before all ten.
	if n == 10 || n*len(chunk) > 2*maxPending+len(chunk) {
		t.Fatalf("%d writes of 64 KiB returned while the peer read nothing", n)
	}
	go io.Copy(io.Discard, b)
	for range wrote {
		n++
	}
	if n < 10 {
		t.Fatalf("only %d writes went through once the peer read", n)
	}
}

// Close writes what is pending before it closes.
func TestCloseDeliversPendingBytes(t *testing.T) {
	server, client := tcpPair(t)
	want := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB: more than one system call
	go func() {
		if err := writeChunks(server, want, 4096); err != nil {
			t.Error(err)
		}
		server.Close()
	}()
	readsExactly(t, client, want)
}

// A broken connection's error reaches the writer, and Write after Close fails.
func TestWriteErrorsReachTheWriter(t *testing.T) {
	a, b := net.Pipe()
	c := NewConn(a)
	b.Close() // the peer is gone: the socket write fails
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Write([]byte("hello"))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write after the peer closed: %v, want %v", err, io.ErrClosedPipe)
	}
	c.Close()
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// A write deadline of now (crypto/tls sets one right after its close_notify alert) does not
// cut off the bytes Write already accepted: a socket would have had them in the kernel.
func TestDeadlineOfNowKeepsAcceptedBytes(t *testing.T) {
	server, client := tcpPair(t)
	want := bytes.Repeat([]byte("abcdefghij"), 200_000) // 2 MB: still pending when the deadline comes
	go func() {
		if err := writeChunks(server, want, 64<<10); err != nil {
			t.Error(err)
		}
		if err := server.SetWriteDeadline(time.Now()); err != nil {
			t.Error(err)
		}
		if _, err := server.Write([]byte("late")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Write after its deadline: %v, want %v", err, os.ErrDeadlineExceeded)
		}
		server.Close()
	}()
	readsExactly(t, client, want) // the bytes accepted before the deadline, not "late"
}

// Close returns while accepted bytes still wait for a peer that is not reading yet, and the
// peer, reading later, gets every one of them (a socket's send buffer outlives its close).
func TestCloseLetsALatePeerReadEverything(t *testing.T) {
	server, client := tcpPair(t)
	want := bytes.Repeat([]byte("0123456789"), 20_000) // 200 KB: under maxPending, over the kernel's buffers here
	if _, err := server.Write(want); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- server.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close waited for a peer that does not read")
	}
	readsExactly(t, client, want)
}

// A deadline cleared after its bytes went out is cleared on the socket too: net/http sets
// one for the TLS handshake and clears it, and a connection must not die when the
// handshake's deadline passes (every API connection broke 30 s after it was opened).
func TestClearedDeadlineDoesNotOutliveItsBytes(t *testing.T) {
	server, client := tcpPair(t)
	if err := server.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if err := server.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // past the old deadline, with the writer idle
	lateWritesArrive(t, server, client)
}

// lateWritesArrive writes twice on server, long after an old deadline (the second Write
// returns an error of the first one's system call), closes it, and reads both at client.
func lateWritesArrive(t *testing.T, server *Conn, client net.Conn) {
	t.Helper()
	for _, b := range []string{"late", "!"} {
		if _, err := server.Write([]byte(b)); err != nil {
			t.Fatalf("a write past an old deadline failed: %v", err)
		}
	}
	server.Close()
	readsExactly(t, client, []byte("late!"))
}

// An empty Write opens no batch: the next bytes go under the deadline in force when they
// are written, not the one of the empty Write.
func TestEmptyWriteKeepsNoDeadline(t *testing.T) {
	server, client := tcpPair(t)
	if err := server.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty Write: %d, %v", n, err)
	}
	if err := server.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	lateWritesArrive(t, server, client)
}
