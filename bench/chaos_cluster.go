package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/cluster"
)

// chaosCluster is the skiff cluster under test: the processes cluster.Up started, found,
// killed and restarted through cluster.json's pids, never by name.
type chaosCluster struct {
	mu      sync.Mutex // guards the pids in lc, which restarts change while samplers read
	lc      *cluster.LocalCluster
	configs map[string]*rest.Config // per server name
	targets []cluster.StatusTarget
}

func openChaosCluster(lc *cluster.LocalCluster, opTimeout time.Duration) (*chaosCluster, error) {
	c := &chaosCluster{lc: lc, configs: map[string]*rest.Config{}}
	for _, p := range lc.Processes {
		if p.Role != "server" {
			continue
		}
		cfg, err := cluster.RestConfig(lc.Kubeconfig, p.Name)
		if err != nil {
			return nil, err
		}
		cfg.Timeout = opTimeout
		c.configs[p.Name] = cfg
		c.targets = append(c.targets, cluster.StatusTarget{Name: p.Name, APIURL: p.APIURL, Config: cfg})
	}
	return c, nil
}

func (c *chaosCluster) servers() []string {
	var out []string
	for _, t := range c.targets {
		out = append(out, t.Name)
	}
	return out
}

func (c *chaosCluster) proc(name string) *cluster.Process {
	for i := range c.lc.Processes {
		if c.lc.Processes[i].Name == name {
			return &c.lc.Processes[i]
		}
	}
	return nil
}

func (c *chaosCluster) agents() []string {
	var out []string
	for _, p := range c.lc.Processes {
		if p.Role == "agent" {
			out = append(out, p.Name)
		}
	}
	return out
}

// realAgents are the agents that run real containers (libcontainer), not hollow ones.
func (c *chaosCluster) realAgents() []string {
	var out []string
	for _, p := range c.lc.Processes {
		if p.Role == "agent" && argAfter(p.Args, "--runtime") == "libcontainer" {
			out = append(out, p.Name)
		}
	}
	return out
}

// realCgroupRoots maps each real agent to its --cgroup-root, below which it puts its pods.
func (c *chaosCluster) realCgroupRoots() map[string]string {
	out := map[string]string{}
	for _, name := range c.realAgents() {
		if root := argAfter(c.proc(name).Args, "--cgroup-root"); root != "" {
			out[name] = root
		}
	}
	return out
}

// argAfter is the value of a flag given as two arguments, "" when absent.
func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// status asks the given servers (all when none) for their Raft state.
func (c *chaosCluster) status(ctx context.Context, only ...string) cluster.Status {
	var ts []cluster.StatusTarget
	for _, t := range c.targets {
		if len(only) == 0 || slices.Contains(only, t.Name) {
			ts = append(ts, t)
		}
	}
	return cluster.CollectStatus(ctx, ts)
}

// leader is the server that says it leads, "" if none does.
func (c *chaosCluster) leader(ctx context.Context) string { return c.status(ctx).Leader }

// waitLeaderAmong polls the given servers until one other than not reports itself leader,
// and returns when that happened.
func (c *chaosCluster) waitLeaderAmong(ctx context.Context, servers []string, not string, timeout time.Duration) (string, time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		st := c.status(qctx, servers...)
		cancel()
		if st.Leader != "" && st.Leader != not {
			return st.Leader, time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return "", time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", time.Time{}, fmt.Errorf("no leader among %v after %v", servers, timeout)
}

// healthy reports whether the cluster is whole again: one leader, every server answering
// /readyz and its metrics, and no follower more than maxLag entries behind.
func healthy(st cluster.Status, maxLag uint64) error {
	leaders := 0
	for _, m := range st.Members {
		switch {
		case m.RaftState == "Leader":
			leaders++
		case m.RaftState != "Follower":
			return fmt.Errorf("%s is %s: %s", m.Name, m.RaftState, m.Error)
		}
		if !m.Healthy {
			return fmt.Errorf("%s is not ready", m.Name)
		}
		if m.Lag > maxLag {
			return fmt.Errorf("%s lags %d entries", m.Name, m.Lag)
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%d leaders", leaders)
	}
	return nil
}

// waitHealthy polls until healthy, or returns the last reason it was not.
func (c *chaosCluster) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		last = healthy(c.status(qctx), 100)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: cluster not healthy after %v: %w", timeout, last)
}

// pid is the process's current pid, 0 if there is no such process.
func (c *chaosCluster) pid(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.proc(name); p != nil {
		return p.PID
	}
	return 0
}

// kill SIGKILLs a process by the pid cluster.json recorded and waits until it is gone.
func (c *chaosCluster) kill(name string) error {
	pid := c.pid(name)
	if pid <= 0 {
		return fmt.Errorf("bench: no process %s", name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("bench: kill %s (pid %d): %w", name, pid, err)
	}
	cluster.WaitGone(pid, 2*time.Second)
	return nil
}

// restart starts the process again, with extra arguments appended to its command line
// for good.
func (c *chaosCluster) restart(name string, extra ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.proc(name)
	if p == nil {
		return fmt.Errorf("bench: no process %s", name)
	}
	p.Args = append(p.Args, extra...)
	if err := cluster.StartProcess(c.lc, p); err != nil {
		return err
	}
	return c.recordPID(p.Name, p.PID, p.Args)
}

// recordPID writes a restarted process's pid and command line into cluster.json, so that
// cluster.Down (at the end of the run, or by hand after a crash of the benchmark) stops
// the running process, not the one killed earlier. Other fields are kept as they are.
func (c *chaosCluster) recordPID(name string, pid int, args []string) error {
	path := filepath.Join(c.lc.Dir, "cluster.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("bench: %s: %w", path, err)
	}
	procs, _ := doc["processes"].([]any)
	for _, p := range procs {
		if m, ok := p.(map[string]any); ok && m["name"] == name {
			m["pid"], m["args"] = pid, args
		}
	}
	if b, err = json.MarshalIndent(doc, "", "  "); err != nil {
		return err
	}
	tmp := path + ".bench"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (c *chaosCluster) signal(name string, sig syscall.Signal) error {
	pid := c.pid(name)
	if pid <= 0 {
		return fmt.Errorf("bench: no process %s", name)
	}
	return syscall.Kill(pid, sig)
}

// netem adds (on) or removes delay and loss on the server's side of its veth, inside its
// network namespace.
func (c *chaosCluster) netem(name string, on bool) error {
	p := c.proc(name)
	if p == nil || p.Netns == "" {
		return fmt.Errorf("bench: %s has no network namespace", name)
	}
	args := []string{"netns", "exec", p.Netns, "tc", "qdisc", "del", "dev", "eth0", "root"}
	if on {
		args = []string{"netns", "exec", p.Netns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "150ms", "50ms", "loss", "10%"}
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bench: %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// exitedAfterRestart names the targets that are no longer running, with the panic or last
// line of their logs: a server that cannot start again after a fault is the finding.
func (c *chaosCluster) exitedAfterRestart(targets []string) string {
	var b strings.Builder
	for _, t := range targets {
		c.mu.Lock()
		p := c.proc(t)
		c.mu.Unlock()
		if p == nil || cluster.ProcessAlive(c.pid(t)) {
			continue
		}
		last := ""
		for _, line := range strings.Split(tail(p.LogFile, 300), "\n") {
			if strings.HasPrefix(line, "panic:") || strings.Contains(line, "[ERROR]") {
				last = line
			}
		}
		fmt.Fprintf(&b, "; %s exited after its restart (log %s): %s", t, p.LogFile, last)
	}
	return b.String()
}
