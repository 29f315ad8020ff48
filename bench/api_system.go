package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
}

// skiffSystem is three `skiff server` processes started with cluster.Up.
type skiffSystem struct {
	dir, binary string
	progress    io.Writer
	lc          *cluster.LocalCluster
}

func (s *skiffSystem) Name() string { return "skiff" }

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

func (s *skiffSystem) Stop() error {
	if s.lc == nil {
		if _, err := os.Stat(filepath.Join(s.dir, "cluster.json")); err != nil {
			return nil
		}
	}
	return cluster.Down(s.dir, true, s.progress)
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
