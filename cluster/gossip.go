package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member is what each node advertises over gossip.
type Member struct {
	Name         string `json:"name"`
	Role         string `json:"role"` // "server" or "agent"
	APIAddr      string `json:"api,omitempty"`
	RaftAddr     string `json:"raft,omitempty"`
	Bootstrapped bool   `json:"bootstrapped,omitempty"` // has Raft state: never bootstrap with it
	Alive        bool   `json:"-"`
	GossipAddr   string `json:"-"` // as memberlist knows it
}

// gossip wraps memberlist: every server and agent runs one, encrypted with the key derived
// from the cluster token, and learns who is alive and what role each plays.
type gossip struct {
	ml      *memberlist.Memberlist
	mu      sync.Mutex
	self    Member
	changed chan struct{} // closed and replaced on every membership change
}

type gossipConfig struct {
	Name          string
	BindAddr      string // host:port
	AdvertiseAddr string // host:port; defaults to BindAddr
	Key           []byte
	LogOutput     io.Writer
}

// bindRetry is how long newGossip retries a gossip port that is in use.
const bindRetry = 10 * time.Second

func newGossip(cfg gossipConfig, self Member) (*gossip, error) {
	g := &gossip{self: self, changed: make(chan struct{})}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	if cfg.AdvertiseAddr != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, err
		}
	}
	mc.SecretKey = cfg.Key
	mc.Delegate = g
	mc.Events = g
	mc.Logger = log.New(cfg.LogOutput, "memberlist: ", 0)
	// A process restarted at once after a crash may find its port still held for a moment
	// (an agent killed with -9 and started again failed so in CI): retry for a while.
	var ml *memberlist.Memberlist
	for end := time.Now().Add(bindRetry); ; time.Sleep(100 * time.Millisecond) {
		// memberlist formats the listen error with %v: its text is all there is to test.
		if ml, err = memberlist.Create(mc); err == nil || !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) || time.Now().After(end) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip: %w", err)
	}
	g.ml = ml
	return g, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}

// join contacts any of the given members; it returns how many answered.
func (g *gossip) join(addrs []string) (int, error) { return g.ml.Join(addrs) }

// setSelf updates this node's advertised state and gossips it.
func (g *gossip) setSelf(update func(*Member)) {
	g.mu.Lock()
	update(&g.self)
	g.mu.Unlock()
	_ = g.ml.UpdateNode(0)
}

// members returns every known member with its state, alive or not.
func (g *gossip) members() []Member {
	var out []Member
	for _, n := range g.ml.Members() {
		var m Member
		if json.Unmarshal(n.Meta, &m) != nil || m.Name == "" {
			continue
		}
		m.Alive = n.State == memberlist.StateAlive
		m.GossipAddr = n.Address()
		out = append(out, m)
	}
	return out
}

// changes returns a channel closed at the next membership change.
func (g *gossip) changes() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

func (g *gossip) notify() {
	g.mu.Lock()
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

func (g *gossip) leave() {
	_ = g.ml.Leave(0)
	_ = g.ml.Shutdown()
}

// memberlist.Delegate: this node's metadata; no user messages or state exchange.
func (g *gossip) NodeMeta(limit int) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, _ := json.Marshal(g.self)
	if len(b) > limit {
		return nil
	}
	return b
}
func (g *gossip) NotifyMsg([]byte)                {}
func (g *gossip) GetBroadcasts(int, int) [][]byte { return nil }
func (g *gossip) LocalState(bool) []byte          { return nil }
func (g *gossip) MergeRemoteState([]byte, bool)   {}

// memberlist.EventDelegate: any change wakes the waiters.
func (g *gossip) NotifyJoin(*memberlist.Node)   { g.notify() }
func (g *gossip) NotifyLeave(*memberlist.Node)  { g.notify() }
func (g *gossip) NotifyUpdate(*memberlist.Node) { g.notify() }
