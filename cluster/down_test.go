package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

func TestDownStopsContainersAndPurgeLeavesNothing(t *testing.T) {
	needsRoot(t)
	dir := filepath.Join(t.TempDir(), "c")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 3, Agents: 1, Binary: skiffBin, TestImageBinary: testImageBin})
	if err != nil {
		_ = cluster.Down(dir, true, os.Stderr)
		t.Fatalf("up: %v\n%s", err, serverLogs(lc))
	}
	agent := process(lc, "agent-1")
	// A running pod, bound by hand so this test needs no scheduler.
	mustKubectl(t, lc, "skiff-1", "run", "sleeper", "--image=skiff.local/testimage:latest", "--restart=Never",
		`--overrides={"spec":{"nodeName":"agent-1"}}`, "--", "sleep", "1000")
	eventually(t, 60*time.Second, func() error {
		out, err := kubectl(t, lc, "skiff-2", "get", "pod", "sleeper", "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Running" {
			return errorf("pod phase %q, %v\n%s", out, err, serverLogs(lc))
		}
		return nil
	})
	root := agent.Args[slices.Index(agent.Args, "--cgroup-root")+1]
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + root)
	if len(cgroups) == 0 {
		t.Fatalf("the running pod has no cgroup under %s", root)
	}
	// Another agent-1 on this machine (a standalone `skiff agent --name agent-1`, whose pods
	// go below skiff/agent-1): its containers must survive this cluster's down.
	other := bystander(t, "/sys/fs/cgroup/pids/skiff/agent-1/podx")
	if err := cluster.Down(dir, true, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/" + root); len(left) != 0 {
		t.Fatalf("cgroups left behind: %v", left)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/" + filepath.Dir(root)); len(left) != 0 {
		t.Fatalf("the cluster's cgroup left behind: %v", left)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("skiff down killed a process of another cluster's agent-1: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Fatal("mounts left behind under the cluster's directory")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", dir, err)
	}
}

// bystander runs a sleep in a new cgroup at dir (removed with it when the test ends).
func bystander(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for d := dir; d != "/sys/fs/cgroup/pids/skiff"; d = filepath.Dir(d) {
			_ = os.Remove(d)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cmd
}
