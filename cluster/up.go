package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one process of a local cluster started by Up, as recorded in cluster.json so
// that scripts and the chaos benchmarks can find, kill and restart it.
type Process struct {
	Name       string   `json:"name"`
	Role       string   `json:"role"` // "server" or "agent"
	PID        int      `json:"pid"`
	APIURL     string   `json:"apiURL,omitempty"`
	RaftAddr   string   `json:"raftAddr,omitempty"`
	GossipAddr string   `json:"gossipAddr,omitempty"`
	DataDir    string   `json:"dataDir"`
	LogFile    string   `json:"logFile"`
	Args       []string `json:"args"`            // the command line, without the binary
	Netns      string   `json:"netns,omitempty"` // its network namespace, with --netns
	IP         string   `json:"ip,omitempty"`    // its address there
}

// LocalCluster is the content of DIR/cluster.json.
type LocalCluster struct {
	Dir        string     `json:"dir"`
	Binary     string     `json:"binary"`
	Kubeconfig string     `json:"kubeconfig"`
	Netns      *netnsPlan `json:"netns,omitempty"`
	Processes  []Process  `json:"processes"`
}

// UpConfig configures Up.
type UpConfig struct {
	Dir     string
	Servers int    // default 3
	Agents  int    // default 1
	Runtime string // agent runtime: libcontainer or hollow
	// RealAgents are libcontainer agents started beside the Agents of Runtime, numbered
	// after them: a cluster of hollow nodes with a few that run real containers.
	RealAgents int
	Binary     string // the skiff binary to run; default: this executable
	// TestImageBinary, a static testimage binary, is served by every libcontainer agent as
	// skiff.local/testimage:latest from an in-process registry, for a machine with no registry.
	TestImageBinary string
	Progress        io.Writer
	Timeout         time.Duration // for the cluster to become healthy; default 2m
	// Netns puts each node in its own network namespace on a bridge, with its own address
	// (root only): real networking and real partitions.
	Netns bool
	// AgentArgs are added to every agent's command line (a benchmark's --pprof-addr).
	AgentArgs []string
}

const clusterFile = "cluster.json"

// LoadLocalCluster reads DIR/cluster.json.
func LoadLocalCluster(dir string) (*LocalCluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, clusterFile))
	if err != nil {
		return nil, err
	}
	var lc LocalCluster
	if err := json.Unmarshal(b, &lc); err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", clusterFile, err)
	}
	return &lc, nil
}

func (lc *LocalCluster) save() error {
	b, err := json.MarshalIndent(lc, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(lc.Dir, clusterFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(lc.Dir, clusterFile))
}

// Up starts (or restarts, with its data) a local cluster of server processes and agents
// under dir, each with its own data dir, ports and log file, and returns once every API
// answers /readyz. Running it on an existing dir reuses its token, ports and data.
func Up(ctx context.Context, cfg UpConfig) (*LocalCluster, error) {
	if cfg.Servers == 0 {
		cfg.Servers = 3
	}
	if cfg.Runtime == "" {
		cfg.Runtime = "libcontainer"
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Binary = exe
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	say := func(format string, a ...any) { fmt.Fprintf(cfg.Progress, format+"\n", a...) }
	token, err := loadOrCreateToken(filepath.Join(dir, "token"))
	if err != nil {
		return nil, err
	}
	keys, err := DeriveKeys(token)
	if err != nil {
		return nil, err
	}
	lc, err := LoadLocalCluster(dir)
	if errors.Is(err, os.ErrNotExist) {
		say("creating a new cluster in %s", dir)
		lc, err = planLocalCluster(dir, cfg)
	} else if err == nil {
		say("restarting the cluster in %s with its data", dir)
	}
	if err != nil {
		return nil, err
	}
	lc.Binary = cfg.Binary
	if lc.Netns != nil {
		if err := lc.Netns.ensureBridge(); err != nil {
			return nil, err
		}
		for _, p := range lc.Processes {
			if err := lc.Netns.ensureNode(p.Netns, p.IP); err != nil {
				return nil, err
			}
		}
		say("network namespaces ready: bridge %s, subnet %s", lc.Netns.Bridge, lc.Netns.Subnet)
	}
	if err := writeAdminKubeconfig(lc, keys); err != nil {
		return nil, err
	}
	// Agents join gossip with the agent token (the server token stays with the servers).
	if err := os.WriteFile(filepath.Join(dir, agentTokenFile), []byte(keys.AgentToken()+"\n"), 0o600); err != nil {
		return nil, err
	}
	for i := range lc.Processes {
		p := &lc.Processes[i]
		if p.Role != "server" {
			continue
		}
		if ProcessAlive(p.PID) {
			say("server %s already running (pid %d)", p.Name, p.PID)
			continue
		}
		if err := StartProcess(lc, p); err != nil {
			return nil, err
		}
		say("started server %s (pid %d): API %s, log %s", p.Name, p.PID, p.APIURL, p.LogFile)
	}
	if err := lc.save(); err != nil {
		return nil, err
	}
	say("waiting for the servers to elect a leader and serve the API...")
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := waitReady(wctx, lc, keys, say); err != nil {
		return lc, err
	}
	for i := range lc.Processes {
		p := &lc.Processes[i]
		if p.Role != "agent" || ProcessAlive(p.PID) {
			continue
		}
		if err := writeNodeKubeconfig(lc, keys, p); err != nil {
			return lc, err
		}
		if err := StartProcess(lc, p); err != nil {
			return lc, err
		}
		say("started agent %s (pid %d), log %s", p.Name, p.PID, p.LogFile)
	}
	if err := lc.save(); err != nil {
		return lc, err
	}
	if err := waitNodesReady(wctx, lc, keys, say); err != nil {
		return lc, err
	}
	return lc, nil
}

func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	t := NewServerToken()
	return t, os.WriteFile(path, []byte(t+"\n"), 0o600)
}

// agentTokenFile, in a local cluster's directory, holds the agent token.
const agentTokenFile = "agent-token"

// planLocalCluster picks names, free loopback ports and command lines.
func planLocalCluster(dir string, cfg UpConfig) (*LocalCluster, error) {
	lc := &LocalCluster{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	if cfg.Netns {
		plan := planNetns(dir)
		lc.Netns = &plan
	}
	// addrs gives a node its host and n ports: free loopback ports, or fixed ports on the
	// node's own address in its namespace.
	node := 0
	taken := map[int]bool{} // ports given to an earlier process of this cluster
	addrs := func(name string, fixed ...int) (host, ns string, ports []int, err error) {
		if lc.Netns == nil {
			ports, err = freePorts(len(fixed), taken)
			return "127.0.0.1", "", ports, err
		}
		host = lc.Netns.nodeIP(node)
		node++
		return host, nsName(dir, name), fixed, nil
	}
	var gossips []string
	for i := 1; i <= cfg.Servers; i++ {
		name := fmt.Sprintf("skiff-%d", i)
		host, ns, ports, err := addrs(name, 6443, 7000, 7001)
		if err != nil {
			return nil, err
		}
		p := Process{
			Name: name, Role: "server", Netns: ns,
			APIURL:     fmt.Sprintf("https://%s:%d", host, ports[0]),
			RaftAddr:   fmt.Sprintf("%s:%d", host, ports[1]),
			GossipAddr: fmt.Sprintf("%s:%d", host, ports[2]),
			DataDir:    filepath.Join(dir, name),
		}
		if ns != "" {
			p.IP = host
		}
		p.LogFile = filepath.Join(p.DataDir, "server.log")
		gossips = append(gossips, p.GossipAddr)
		lc.Processes = append(lc.Processes, p)
	}
	for i := range lc.Processes {
		p := &lc.Processes[i]
		p.Args = []string{"server", "--name", p.Name, "--data-dir", p.DataDir,
			"--token-file", filepath.Join(dir, "token"),
			"--api-addr", strings.TrimPrefix(p.APIURL, "https://"), "--raft-addr", p.RaftAddr, "--gossip-addr", p.GossipAddr,
			"--bootstrap-expect", strconv.Itoa(cfg.Servers)}
		for _, g := range gossips {
			if g != p.GossipAddr {
				p.Args = append(p.Args, "--join", g)
			}
		}
	}
	for i := 1; i <= cfg.Agents+cfg.RealAgents; i++ {
		name := fmt.Sprintf("agent-%d", i)
		rt := cfg.Runtime
		if i > cfg.Agents {
			rt = "libcontainer"
		}
		host, ns, ports, err := addrs(name, 10250, 7002)
		if err != nil {
			return nil, err
		}
		p := Process{Name: name, Role: "agent", DataDir: filepath.Join(dir, name), Netns: ns}
		if ns != "" {
			p.IP = host
		}
		p.LogFile = filepath.Join(p.DataDir, "agent.log")
		p.Args = []string{"agent", "--name", name, "--data-dir", p.DataDir,
			"--kubeconfig", filepath.Join(p.DataDir, "kubeconfig"), "--runtime", rt,
			"--listen", fmt.Sprintf("%s:%d", host, ports[0]), "--node-ip", host,
			"--token-file", filepath.Join(dir, agentTokenFile), "--gossip-addr", fmt.Sprintf("%s:%d", host, ports[1]),
			"--cgroup-root", agentCgroupRoot(dir, name)}
		for _, g := range gossips {
			p.Args = append(p.Args, "--join", g)
		}
		if cfg.TestImageBinary != "" && rt == "libcontainer" {
			bin, err := filepath.Abs(cfg.TestImageBinary)
			if err != nil {
				return nil, err
			}
			p.Args = append(p.Args, "--test-image-binary", bin)
		}
		p.Args = append(p.Args, cfg.AgentArgs...)
		lc.Processes = append(lc.Processes, p)
	}
	return lc, nil
}

// freePorts finds n free ports on 127.0.0.1 that are not in taken, and adds them to it. A
// port is free only while nothing listens on it: the kernel may hand a port this function
// released for one process to the next call, which taken rules out (a server's gossip
// port came back as another's API port, and that server could not start).
func freePorts(n int, taken map[int]bool) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l) // held until return: no duplicates within one call
		port := l.Addr().(*net.TCPAddr).Port
		if taken[port] {
			continue
		}
		taken[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// StartProcess starts p detached from this process (its own session, so it outlives the
// caller and a Ctrl-C to the caller does not reach it), logging to p.LogFile. A process of
// lc's gets its new pid written to cluster.json.
func StartProcess(lc *LocalCluster, p *Process) error {
	// A process killed a moment ago may not have exited yet and still hold its ports: an
	// agent restarted right after a SIGKILL once failed to bind its gossip port.
	if !WaitGone(p.PID, 10*time.Second) {
		return fmt.Errorf("cluster: %s (pid %d) is still running", p.Name, p.PID)
	}
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(lc.Binary, p.Args...)
	if p.Netns != "" {
		// nsenter enters only the network namespace and execs the binary, so the pid stays
		// the same. (ip netns exec would also remount /sys, hiding the cgroup hierarchies
		// from the agent.)
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + p.Netns, "--", lc.Binary}, p.Args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cluster: start %s: %w", p.Name, err)
	}
	p.PID = cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reap it if it exits while we run
	// A process of the cluster restarted by itself (a test or a benchmark restarting a
	// killed server) has a new pid: record it, or `skiff down` would stop the old one only
	// and leave this one running.
	for i := range lc.Processes {
		if lc.Processes[i].Name == p.Name {
			lc.Processes[i].PID = p.PID
			return lc.save()
		}
	}
	return nil
}

// WaitGone waits, at most timeout, until pid is no longer a live process.
func WaitGone(pid int, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); ProcessAlive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

// ProcessAlive reports whether pid is a running process (not a zombie).
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie (or a dead task) does not count. The state follows the command name in
	// parentheses, which may hold spaces.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st := string(b)
	i := strings.LastIndexByte(st, ')')
	if i < 0 || i+2 >= len(st) {
		return false
	}
	return st[i+2] != 'Z' && st[i+2] != 'X'
}
