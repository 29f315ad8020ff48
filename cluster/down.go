package cluster

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Down stops every process of the local cluster in dir: agents first, then servers, each
// with SIGTERM and, after grace, SIGKILL. The pods' containers outlive a stopped agent on
// purpose (a restarted agent adopts them), so Down then kills them through the agents'
// cgroups, removes those cgroups and unmounts what is left under dir: nothing it started
// keeps running. With purge it also removes dir and all its data.
func Down(dir string, purge bool, progress io.Writer) error {
	lc, err := LoadLocalCluster(dir)
	if err != nil {
		return err
	}
	order := append([]Process{}, lc.Processes...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Role == "agent" && order[j].Role != "agent" })
	for _, p := range order {
		if !ProcessAlive(p.PID) {
			continue
		}
		fmt.Fprintf(progress, "stopping %s %s (pid %d)\n", p.Role, p.Name, p.PID)
		StopProcess(p.PID, 20*time.Second)
	}
	for _, p := range order {
		// A hollow agent has no containers; the cgroups under its name belong to a real
		// agent of the same name of another cluster on this machine (skiff up names agents
		// agent-1, agent-2, ...), whose containers must not be killed.
		if p.Role == "agent" && !slices.Contains(p.Args, "hollow") {
			if n, err := killCgroups(agentCgroupDirs(p)); err != nil {
				return err
			} else if n > 0 {
				fmt.Fprintf(progress, "stopped %d container process(es) of %s\n", n, p.Name)
			}
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := unmountUnder(abs); err != nil {
		return err
	}
	if !purge {
		return nil
	}
	removeNetns(lc)
	fmt.Fprintf(progress, "removing %s\n", abs)
	return os.RemoveAll(abs)
}

// StopProcess sends SIGTERM, waits up to grace, then SIGKILLs.
func StopProcess(pid int, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if WaitGone(pid, grace) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	WaitGone(pid, 5*time.Second)
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

// agentCgroupRoot is the cgroup a local cluster's agent puts its pods below: under the
// cluster's own name (a hash of its directory), since two clusters on one machine both have
// an agent-1 and `skiff down` of one must not kill the other's containers.
func agentCgroupRoot(dir, node string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	sum := sha256.Sum256([]byte(abs))
	return path.Join("skiff", hex.EncodeToString(sum[:4]), node)
}

// agentCgroupDirs are the agent's cgroup trees, one per cgroup v1 hierarchy: below its
// --cgroup-root, or skiff/<node> for a cluster made before that flag.
func agentCgroupDirs(p Process) []string {
	root := path.Join("skiff", p.Name)
	if i := slices.Index(p.Args, "--cgroup-root"); i >= 0 && i+1 < len(p.Args) {
		root = p.Args[i+1]
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", root))
	return dirs
}

// killCgroups SIGKILLs every process in the given cgroup trees, waits for them to go, then
// removes the cgroups, deepest first. It returns how many processes it killed.
func killCgroups(roots []string) (int, error) {
	var dirs []string
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	pids := map[int]bool{}
	for _, d := range dirs {
		data, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
				pids[pid] = true
			}
		}
	}
	for pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	defer func() {
		for _, r := range roots {
			// The cluster's level above the agent's (skiff/<cluster>) goes with its last
			// agent; while another agent of the cluster is in it, rmdir refuses.
			if parent := filepath.Dir(r); filepath.Base(filepath.Dir(parent)) == "skiff" {
				_ = syscall.Rmdir(parent)
			}
		}
	}()
	var err error
	for try := 0; try < 50; try++ { // a killed process leaves its cgroup a moment later
		err = nil
		for _, d := range dirs {
			if rerr := syscall.Rmdir(d); rerr != nil && rerr != syscall.ENOENT {
				err = fmt.Errorf("cluster: remove cgroup %s: %w", d, rerr)
			}
		}
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return len(pids), err
}
