package rafttest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
)

// Node is one member of a test cluster.
type Node struct {
	ID    string
	Dir   string
	Addr  string
	Layer *FaultLayer
	store atomic.Pointer[raftstore.Store] // nil while stopped
	c     *Cluster
}

// Store returns the node's store, nil while it is stopped.
func (n *Node) Store() *raftstore.Store { return n.store.Load() }

// Cluster is a set of nodes in this process over real TCP and real disk.
type Cluster struct {
	T      testing.TB
	Nodes  []*Node
	Secret []byte
	// Tune adjusts each node's config before it opens (timeouts, snapshot thresholds...).
	Tune func(*raftstore.Config)
}

// Options shape a new cluster.
type Options struct {
	Tune func(*raftstore.Config)
}

// New starts n nodes, bootstraps them together and waits for a ready leader. Everything is
// closed when the test ends.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{T: t, Secret: []byte("test-secret"), Tune: opts.Tune}
	root := t.TempDir()
	var servers []raftstore.Server
	for i := 1; i <= n; i++ {
		node := &Node{ID: fmt.Sprintf("n%d", i), Dir: filepath.Join(root, fmt.Sprintf("n%d", i)), c: c}
		if err := node.Start(); err != nil {
			t.Fatalf("start %s: %v", node.ID, err)
		}
		c.Nodes = append(c.Nodes, node)
		servers = append(servers, raftstore.Server{ID: node.ID, Address: node.Addr, Voter: true})
	}
	t.Cleanup(c.Close)
	for _, node := range c.Nodes {
		if err := node.Store().Bootstrap(servers); err != nil {
			t.Fatalf("bootstrap %s: %v", node.ID, err)
		}
	}
	c.WaitLeader(10 * time.Second)
	return c
}

// AddNode starts a fresh node (not yet in the configuration) and returns it.
func (c *Cluster) AddNode() *Node {
	c.T.Helper()
	id := fmt.Sprintf("n%d", len(c.Nodes)+1)
	node := &Node{ID: id, Dir: filepath.Join(filepath.Dir(c.Nodes[0].Dir), id), c: c}
	if err := node.Start(); err != nil {
		c.T.Fatalf("start %s: %v", id, err)
	}
	c.Nodes = append(c.Nodes, node)
	return node
}

// Start opens (or reopens, with its data) the node on its address.
func (n *Node) Start() error {
	addr := n.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var tcp *raftstore.TCPLayer
	var err error
	for i := 0; i < 50; i++ { // a restarted node takes its old port back
		if tcp, err = raftstore.ListenTCP(addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	n.Addr = tcp.Addr().String()
	n.Layer = NewFaultLayer(tcp)
	cfg := raftstore.Config{ID: n.ID, Dir: n.Dir, Layer: n.Layer, Secret: n.c.Secret}
	if os.Getenv("RAFTTEST_LOG") != "" {
		cfg.RaftLog = os.Stderr
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.ID)
	}
	if n.c.Tune != nil {
		n.c.Tune(&cfg)
	}
	s, err := raftstore.Open(cfg)
	if err != nil {
		return err
	}
	n.store.Store(s)
	return nil
}

// Stop closes the node's store, keeping its data.
func (n *Node) Stop() {
	if s := n.store.Swap(nil); s != nil {
		_ = s.Close()
	}
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// Running returns the nodes that are started.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Store() != nil {
			out = append(out, n)
		}
	}
	return out
}

// Leader returns the running node that leads and is ready, or nil.
func (c *Cluster) Leader() *Node {
	for _, n := range c.Running() {
		if n.Store().IsLeader() {
			return n
		}
	}
	return nil
}

// WaitLeader waits for a ready leader among the running nodes and returns it.
func (c *Cluster) WaitLeader(timeout time.Duration) *Node {
	c.T.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l != nil {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.T.Fatalf("no leader within %s", timeout)
	return nil
}

// Followers returns the running nodes that do not lead.
func (c *Cluster) Followers() []*Node {
	var out []*Node
	for _, n := range c.Running() {
		if !n.Store().IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// Eventually retries f until it returns nil or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within %s: %v", timeout, err)
}

// Ctx returns a context that ends with the test or after d.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
