package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// skiffCluster is three `skiff store-node` processes, each a bare raftstore node with its
// own data directory, bootstrapped together on loopback.
type skiffCluster struct {
	nodes []skiffNode
	procs procs
}

type skiffNode struct {
	id         string
	raftAddr   string
	clientAddr string
	pprofAddr  string // empty unless profiling
}

// nodeStatus is what a store node's /v1/status reports.
type nodeStatus struct {
	ID       string `json:"id"`
	LeaderID string `json:"leader_id"`
	IsLeader bool   `json:"is_leader"`
	Revision int64  `json:"revision"`
}

// startSkiff starts n store nodes from exe under root and waits for a ready leader. On
// error every process started is stopped.
func startSkiff(ctx context.Context, exe, root string, n int, pprof bool) (_ *skiffCluster, err error) {
	addrs, err := freeAddrs(3 * n)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("bench: secret: %w", err)
	}
	c := &skiffCluster{}
	var peers []string
	for i := range n {
		nd := skiffNode{id: fmt.Sprintf("n%d", i+1), raftAddr: addrs[3*i], clientAddr: addrs[3*i+1]}
		if pprof {
			nd.pprofAddr = addrs[3*i+2]
		}
		c.nodes = append(c.nodes, nd)
		peers = append(peers, nd.id+"="+nd.raftAddr)
	}
	defer func() {
		if err != nil {
			c.procs.stop()
		}
	}()
	for _, nd := range c.nodes {
		dir := filepath.Join(root, nd.id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		args := []string{"store-node", "--id", nd.id, "--dir", dir,
			"--raft-addr", nd.raftAddr, "--client-addr", nd.clientAddr,
			"--peers", strings.Join(peers, ","), "--bootstrap", "--secret", hex.EncodeToString(secret)}
		if nd.pprofAddr != "" {
			args = append(args, "--pprof-addr", nd.pprofAddr)
		}
		p, err := startProc("skiff store-node "+nd.id, filepath.Join(root, nd.id+".log"), exe, args...)
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
	}
	if err := c.waitLeader(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// waitLeader waits until every node names the same leader and that leader is ready.
func (c *skiffCluster) waitLeader(ctx context.Context, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := c.procs.checkAlive(); err != nil {
			return err
		}
		last = c.agreeOnLeader(ctx, hc)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: skiff cluster has no ready leader after %v: %w", timeout, last)
}

func (c *skiffCluster) agreeOnLeader(ctx context.Context, hc *http.Client) error {
	leader, ready := "", false
	for _, nd := range c.nodes {
		st, err := c.status(ctx, hc, nd)
		if err != nil {
			return err
		}
		if st.LeaderID == "" || (leader != "" && st.LeaderID != leader) {
			return fmt.Errorf("%s sees leader %q", nd.id, st.LeaderID)
		}
		leader = st.LeaderID
		ready = ready || st.IsLeader
	}
	if !ready {
		return fmt.Errorf("leader %s not ready", leader)
	}
	return nil
}

func (c *skiffCluster) status(ctx context.Context, hc *http.Client, nd skiffNode) (nodeStatus, error) {
	var st nodeStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.clientAddr+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s status: %s", nd.id, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Leader returns the index of the node that leads and is ready.
func (c *skiffCluster) Leader(ctx context.Context) (int, error) {
	hc := &http.Client{Timeout: time.Second}
	for i, nd := range c.nodes {
		if st, err := c.status(ctx, hc, nd); err == nil && st.IsLeader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("bench: no skiff node leads")
}

func (c *skiffCluster) memberName(i int) string { return c.nodes[i].id }

func (c *skiffCluster) stop() { c.procs.stop() }

func (c *skiffCluster) Name() string { return SystemSkiff }
func (c *skiffCluster) Members() int { return len(c.nodes) }

func (c *skiffCluster) Dial(_ context.Context, member int) (client, error) {
	return newSkiffClient(c.nodes[member%len(c.nodes)].clientAddr), nil
}
