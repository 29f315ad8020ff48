package cluster

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// ServerPool is an agent's view of the API servers: those its kubeconfig names, and the
// live ones gossip reports. The agent's client dials through it, so when the server it talks
// to dies or is cut off, the next connection goes to a live one, and connections to a
// server gossip declares dead are closed at once rather than after HTTP/2's ping timeout.
// (kubelets get this from a load balancer in front of the apiservers; k3s agents from a
// client-side balancer; skiff agents from the membership they already have.)
type ServerPool struct {
	mu      sync.Mutex
	static  []string // host:port from the kubeconfig, tried after the live ones
	live    []string // host:port of servers gossip says are alive, in a stable order
	current string   // the server the last successful dial reached
	conns   map[*poolConn]struct{}
	dialer  net.Dialer
}

// NewServerPool returns a pool over the given API URLs or host:port addresses.
func NewServerPool(servers []string) *ServerPool {
	p := &ServerPool{conns: map[*poolConn]struct{}{}, dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
	for _, s := range servers {
		if hp := hostPort(s); hp != "" && !slices.Contains(p.static, hp) {
			p.static = append(p.static, hp)
		}
	}
	return p
}

func hostPort(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		return u.Host
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return ""
}

// SetLive records the servers gossip reports alive (API URLs) and closes connections to
// any server no longer among them, when gossip knows of at least one live server.
func (p *ServerPool) SetLive(apiURLs []string) {
	var live []string
	for _, s := range apiURLs {
		if hp := hostPort(s); hp != "" && !slices.Contains(live, hp) {
			live = append(live, hp)
		}
	}
	slices.Sort(live)
	p.mu.Lock()
	p.live = live
	var stale []*poolConn
	if len(live) > 0 {
		for c := range p.conns {
			if !slices.Contains(live, c.server) {
				stale = append(stale, c)
			}
		}
		if !slices.Contains(live, p.current) {
			p.current = ""
		}
	}
	p.mu.Unlock()
	for _, c := range stale {
		_ = c.Close() // client-go retries its requests and watches on a live server
	}
}

// candidates is the order to try: the current server if still live, the other live ones,
// then the kubeconfig's.
func (p *ServerPool) candidates() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if p.current != "" && (len(p.live) == 0 || slices.Contains(p.live, p.current)) {
		add(p.current)
	}
	for _, s := range p.live {
		add(s)
	}
	for _, s := range p.static {
		add(s)
	}
	return out
}

// DialContext connects to the first server that answers; the address client-go asks for is
// only a name (every server's certificate is valid for "kubernetes").
func (p *ServerPool) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var errs []error
	for _, s := range p.candidates() {
		c, err := p.dialer.DialContext(ctx, network, s)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		pc := &poolConn{Conn: c, pool: p, server: s}
		p.mu.Lock()
		p.current = s
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		return pc, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("cluster: no API server known")
	}
	return nil, errors.Join(errs...)
}

// RestConfig returns base dialing through the pool. TLS verifies the server name
// "kubernetes", which every server's certificate carries, since the host in the URL may
// not be the server reached.
func (p *ServerPool) RestConfig(base *rest.Config) *rest.Config {
	rc := rest.CopyConfig(base)
	rc.Dial = p.DialContext
	rc.TLSClientConfig.ServerName = "kubernetes"
	return rc
}

type poolConn struct {
	net.Conn
	pool   *ServerPool
	server string
	once   sync.Once
}

func (c *poolConn) Close() error {
	c.once.Do(func() {
		c.pool.mu.Lock()
		delete(c.pool.conns, c)
		c.pool.mu.Unlock()
	})
	return c.Conn.Close()
}
