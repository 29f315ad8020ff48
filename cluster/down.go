package cluster

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Down stops every process of the local cluster in dir: agents first, then servers, each
// with SIGTERM and, after grace, SIGKILL. With purge it also unmounts anything left under
// dir and removes dir.
func Down(dir string, purge bool, progress io.Writer) error {
	lc, err := LoadLocalCluster(dir)
	if err != nil {
		return err
	}
	order := append([]Process{}, lc.Processes...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Role == "agent" && order[j].Role != "agent" })
	for _, p := range order {
		if !processAlive(p.PID) {
			continue
		}
		fmt.Fprintf(progress, "stopping %s %s (pid %d)\n", p.Role, p.Name, p.PID)
		StopProcess(p.PID, 20*time.Second)
	}
	if !purge {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := unmountUnder(abs); err != nil {
		return err
	}
	fmt.Fprintf(progress, "removing %s\n", abs)
	return os.RemoveAll(abs)
}

// StopProcess sends SIGTERM, waits up to grace, then SIGKILLs.
func StopProcess(pid int, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !processAlive(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50 && processAlive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL {
			return fmt.Errorf("cluster: unmount %s: %w", p, err)
		}
	}
	return nil
}
