package cluster_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln
}

// TestServerPoolFollowsGossip: the pool dials the kubeconfig's first server, moves to a live
// one when gossip says the first is dead (closing the connection it had), and falls back to
// any server that answers when the live one refuses.
func TestServerPoolFollowsGossip(t *testing.T) {
	a, b := listen(t), listen(t)
	pool := cluster.NewServerPool([]string{"https://" + a.Addr().String(), b.Addr().String()})
	ctx := context.Background()
	c1, err := pool.DialContext(ctx, "tcp", "ignored:443")
	if err != nil {
		t.Fatal(err)
	}
	if c1.RemoteAddr().String() != a.Addr().String() {
		t.Fatalf("first dial reached %s, want the kubeconfig's first server %s", c1.RemoteAddr(), a.Addr())
	}
	pool.SetLive([]string{"https://" + b.Addr().String()})
	_ = c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c1.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("the connection to a server gossip declared dead stays open (read: %v)", err)
	}
	c2, err := pool.DialContext(ctx, "tcp", "ignored:443")
	if err != nil {
		t.Fatal(err)
	}
	if c2.RemoteAddr().String() != b.Addr().String() {
		t.Fatalf("after gossip, dial reached %s, want the live server %s", c2.RemoteAddr(), b.Addr())
	}
	b.Close()
	c3, err := pool.DialContext(ctx, "tcp", "ignored:443")
	if err != nil {
		t.Fatalf("with the live server gone, the kubeconfig's other server should answer: %v", err)
	}
	if c3.RemoteAddr().String() != a.Addr().String() {
		t.Fatalf("fallback dial reached %s, want %s", c3.RemoteAddr(), a.Addr())
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
