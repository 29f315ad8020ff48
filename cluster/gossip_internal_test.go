package cluster

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// A gossip port still held for a moment (a process restarted right after it was killed)
// is retried, not given up on at once.
func TestGossipWaitsForItsPortToBeFreed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	go func() { time.Sleep(300 * time.Millisecond); ln.Close() }()
	g, err := newGossip(gossipConfig{Name: "n1", BindAddr: addr, LogOutput: io.Discard}, Member{Name: "n1", Role: "agent"})
	if err != nil {
		t.Fatalf("gossip on %s, freed after 300 ms: %v", addr, err)
	}
	defer g.ml.Shutdown()
	if _, port, _ := net.SplitHostPort(addr); strconv.Itoa(int(g.ml.LocalNode().Port)) != port {
		t.Fatalf("gossip bound port %d, want %s", g.ml.LocalNode().Port, port)
	}
}
