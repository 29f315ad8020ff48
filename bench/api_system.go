package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/cluster"
)

// apiSystem is one control plane under test: started fresh, measured, stopped. The skiff
// cluster is one; the upstream reference (--peer k8s-reference) will be another.
type apiSystem interface {
	Name() string // "skiff" or "upstream"
	// Start brings the system up and returns client configs, one per API endpoint.
	Start(ctx context.Context) ([]*rest.Config, error)
	// PIDs are its control-plane processes, whose memory is summed.
	PIDs() []int
	// Stop stops every process Start started.
	Stop() error
	// StartNodes brings up n simulated nodes: skiff's own hollow agents, or kwok nodes.
	StartNodes(ctx context.Context, client kubernetes.Interface, n int) (nodeFleet, error)
}

// skiffSystem is three `skiff server` processes started with cluster.Up.
type skiffSystem struct {
	dir, binary string
	// raftHeartbeat, if set, restarts the servers with --raft-heartbeat-timeout (as `skiff
	// bench scheduler` can): on a machine starved of CPU a short one loses leadership, and
	// each loss restarts the controllers.
	raftHeartbeat time.Duration
	progress      io.Writer
	label         string // starts its progress lines; "bench api: skiff: " when empty
	// kwokBin, if set, holds the reference's kwok: StartNodes runs it instead of hollow
	// agents (bench api --skiff-nodes kwok, bench scale --kwok).
	kwokBin string
	lc      *cluster.LocalCluster
}

func (s *skiffSystem) Name() string { return "skiff" }

func (s *skiffSystem) say(format string, a ...any) {
	label := s.label
	if label == "" {
		label = "bench api: skiff: "
	}
	fmt.Fprintf(s.progress, label+format+"\n", a...)
}

func (s *skiffSystem) Start(ctx context.Context) ([]*rest.Config, error) {
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: s.dir, Servers: 3, Agents: 0, Binary: s.binary, Progress: s.progress})
	if lc != nil {
		s.lc = lc
	} else if l, lerr := cluster.LoadLocalCluster(s.dir); lerr == nil {
		s.lc = l // a partial start still gets stopped
	}
	if err != nil {
		return nil, fmt.Errorf("skiff up: %w", err)
	}
	if s.raftHeartbeat > 0 {
		if err := s.restartServers(ctx, "--raft-heartbeat-timeout", s.raftHeartbeat.String()); err != nil {
			return nil, err
		}
	}
	var cfgs []*rest.Config
	for _, p := range lc.Processes {
		if p.Role != "server" {
			continue
		}
		c, err := cluster.RestConfig(lc.Kubeconfig, p.Name)
		if err != nil {
			return nil, err
		}
		cfgs = append(cfgs, c)
	}
	if len(cfgs) == 0 {
		return nil, fmt.Errorf("skiff up: no servers in %s", filepath.Join(s.dir, "cluster.json"))
	}
	return cfgs, nil
}

func (s *skiffSystem) PIDs() []int {
	if s.lc == nil {
		return nil
	}
	var out []int
	for _, p := range s.lc.Processes {
		if p.Role == "server" {
			out = append(out, p.PID)
		}
	}
	return out
}

// restartServers restarts every server with extra arguments and waits for a leader. The
// new pids live in s.lc only (cluster.json keeps the old ones), so Stop stops them first.
func (s *skiffSystem) restartServers(ctx context.Context, args ...string) error {
	s.say("restarting the servers with %s", strings.Join(args, " "))
	var servers []cluster.Process
	for i := range s.lc.Processes {
		p := &s.lc.Processes[i]
		if p.Role != "server" {
			continue
		}
		cluster.StopProcess(p.PID, 10*time.Second)
		p.Args = append(p.Args, args...)
		if err := cluster.StartProcess(s.lc, p); err != nil {
			return err
		}
		servers = append(servers, *p)
	}
	for wait := time.Now(); ; time.Sleep(time.Second) {
		if st := serverStatus(ctx, s.lc, servers); st.Leader != "" {
			return nil
		}
		if time.Since(wait) > time.Minute || ctx.Err() != nil {
			return fmt.Errorf("skiff: the restarted servers have no leader after a minute")
		}
	}
}

// Kubeconfig is the cluster's admin kubeconfig (one context per server, the first current).
func (s *skiffSystem) Kubeconfig() string {
	if s.lc == nil {
		return ""
	}
	return s.lc.Kubeconfig
}

// StartNodes runs n hollow node agents in one `skiff hollow-nodes` process, as `skiff bench
// scheduler` does: each the real agent code (join, Lease every 10 s, node status, pod
// watch, pod status) with simulated containers. With kwokBin set, n kwok nodes instead.
func (s *skiffSystem) StartNodes(ctx context.Context, client kubernetes.Interface, n int) (nodeFleet, error) {
	if s.lc == nil {
		return nil, fmt.Errorf("skiff: not started")
	}
	if s.kwokBin != "" {
		return startKwokFleet(ctx, s, client, s.kwokBin, n, s.say)
	}
	procs, err := startHollowNodes(s.lc, n)
	if err != nil {
		return nil, err
	}
	s.say("%d hollow nodes in %d process(es) of at most %d", n, len(procs), hollowNodesPerProcess)
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.PID)
		s.say("%s (pid %d), log %s", p.Name, p.PID, p.LogFile)
	}
	return fleetFunc{
		pids: pids,
		alive: func() error {
			for _, p := range procs {
				if !cluster.ProcessAlive(p.PID) {
					return fmt.Errorf("a hollow-nodes process exited (end of %s:\n%s)", p.LogFile, tail(p.LogFile, 10))
				}
			}
			return nil
		},
		stop: func() { stopHollowNodes(procs) },
	}, nil
}

// nodesReadyTimeout is the default wait for n simulated nodes to be Ready (bench api and
// bench scale): 5 minutes, or 0.36 s a node, whichever is longer.
func nodesReadyTimeout(n int) time.Duration {
	return max(5*time.Minute, time.Duration(n)*360*time.Millisecond)
}

// hollowNodesPerProcess bounds one hollow-nodes process: each node holds a listener and
// its API connections (about four descriptors), and this machine's open-file limit is
// 20,000 a process, which unprivileged root here cannot raise (no CAP_SYS_RESOURCE).
const hollowNodesPerProcess = 2000

// startHollowNodes starts n hollow nodes against the cluster's servers, named hollow-0 to
// hollow-<n-1>, in processes of at most hollowNodesPerProcess nodes each.
func startHollowNodes(lc *cluster.LocalCluster, n int) ([]cluster.Process, error) {
	dir := lc.Dir
	var servers []string
	for _, p := range lc.Processes {
		if p.Role == "server" {
			servers = append(servers, "--server", p.APIURL)
		}
	}
	var procs []cluster.Process
	for first, k := 0, 0; first < n; first, k = first+hollowNodesPerProcess, k+1 {
		count := min(hollowNodesPerProcess, n-first)
		args := append([]string{"hollow-nodes", "--count", strconv.Itoa(count), "--first", strconv.Itoa(first),
			"--token-file", filepath.Join(dir, "agent-token"), "--data-dir", filepath.Join(dir, "hollow")}, servers...)
		name, log := "hollow-nodes", filepath.Join(dir, "hollow-nodes.log")
		if k > 0 {
			name, log = fmt.Sprintf("hollow-nodes-%d", k), filepath.Join(dir, fmt.Sprintf("hollow-nodes-%d.log", k))
		}
		p := cluster.Process{Name: name, Role: "agent", DataDir: filepath.Join(dir, "hollow"), LogFile: log, Args: args}
		if err := cluster.StartProcess(lc, &p); err != nil {
			stopHollowNodes(procs)
			return nil, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// stopHollowNodes stops the processes startHollowNodes started, all at once.
func stopHollowNodes(procs []cluster.Process) {
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { cluster.StopProcess(p.PID, 10*time.Second) })
	}
	wg.Wait()
}

// memAvailableMB is MemAvailable from /proc/meminfo.
func memAvailableMB() (float64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no MemAvailable")
}

// Stop stops the servers and removes their data, keeping the logs (servers', hollow
// nodes', kwok's) in <dir>-logs.
func (s *skiffSystem) Stop() error {
	if s.lc == nil {
		if _, err := os.Stat(filepath.Join(s.dir, "cluster.json")); err != nil {
			return nil
		}
	}
	if s.lc != nil {
		for _, p := range s.lc.Processes {
			if p.Role == "server" {
				cluster.StopProcess(p.PID, 20*time.Second) // restarted servers' pids are not in cluster.json
			}
		}
	}
	err := cluster.Down(s.dir, false, io.Discard)
	moveLogs(s.dir, s.dir+"-logs")
	return errors.Join(err, cluster.Down(s.dir, true, io.Discard))
}

// moveLogs moves the *.log files in dir and its subdirectories to logDir.
func moveLogs(dir, logDir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		dst := filepath.Join(logDir, strings.ReplaceAll(rel, string(filepath.Separator), "_"))
		if os.MkdirAll(logDir, 0o755) == nil {
			_ = os.Rename(path, dst)
		}
		return nil
	})
}

// procMemMB reads VmRSS (now) and VmHWM (peak) of a process, in MB.
func procMemMB(pid int) (rss, peak float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = kb / 1024
		} else {
			peak = kb / 1024
		}
	}
	return rss, peak, sc.Err()
}

// summedMemMB sums procMemMB over pids.
func summedMemMB(pids []int) (rss, peak float64, err error) {
	for _, pid := range pids {
		r, p, err := procMemMB(pid)
		if err != nil {
			return 0, 0, err
		}
		rss, peak = rss+r, peak+p
	}
	return rss, peak, nil
}
