package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/skiff/" + agent.Name)
	if len(cgroups) == 0 {
		t.Fatal("the running pod has no cgroup under skiff/agent-1")
	}
	if err := cluster.Down(dir, true, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/skiff/" + agent.Name); len(left) != 0 {
		t.Fatalf("cgroups left behind: %v", left)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Fatal("mounts left behind under the cluster's directory")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", dir, err)
	}
}
