package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

// skiffBin is the real binary, built once for this package's tests: these tests run
// servers as separate processes, as users do. testImageBin is the static test image program.
var skiffBin, testImageBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	skiffBin = filepath.Join(dir, "skiff")
	// Built as the Makefile builds it: with the seccomp tag, whose libseccomp headers
	// the Makefile's cdeps installs when they are missing.
	if exec.Command("pkg-config", "--exists", "libseccomp").Run() != nil {
		mk := exec.Command("make", "-C", "..", "cdeps")
		mk.Stdout, mk.Stderr = os.Stderr, os.Stderr
		if err := mk.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "installing libseccomp-dev for the seccomp build tag:", err)
			os.Exit(1)
		}
	}
	build := exec.Command("go", "build", "-tags", "seccomp", "-o", skiffBin, "github.com/skiff-dev/skiff/cmd/skiff")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building skiff:", err)
		os.Exit(1)
	}
	testImageBin = filepath.Join(dir, "testimage")
	build = exec.Command("go", "build", "-o", testImageBin, "github.com/skiff-dev/skiff/testimage")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building testimage:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// upCluster starts a local cluster of three servers (no agents) under a temp dir and
// stops it when the test ends.
func upCluster(t *testing.T) *cluster.LocalCluster {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log strings.Builder
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 3, Agents: 0, Binary: skiffBin, Progress: &log})
	t.Cleanup(func() {
		if err := cluster.Down(dir, true, os.Stderr); err != nil {
			t.Errorf("down: %v", err)
		}
		if left := processesUnder(dir); len(left) > 0 {
			t.Errorf("skiff down left processes of the cluster running: %v", left)
		}
	})
	if err != nil {
		t.Fatalf("up: %v\n%s%s", err, log.String(), serverLogs(lc))
	}
	return lc
}

func serverLogs(lc *cluster.LocalCluster) string {
	if lc == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range lc.Processes {
		data, _ := os.ReadFile(p.LogFile)
		lines := strings.Split(string(data), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", p.Name, strings.Join(lines, "\n"))
	}
	return b.String()
}

// kubectl runs the real kubectl against a context of the cluster.
func kubectl(t *testing.T, lc *cluster.LocalCluster, context string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context2(30 * time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/kubectl", append([]string{"--kubeconfig", lc.Kubeconfig, "--context", context}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustKubectl(t *testing.T, lc *cluster.LocalCluster, context string, args ...string) string {
	t.Helper()
	out, err := kubectl(t, lc, context, args...)
	if err != nil {
		t.Fatalf("kubectl --context %s %s: %v\n%s", context, strings.Join(args, " "), err, out)
	}
	return out
}

func context2(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// leader returns the name of the current leader, waiting for one.
func leader(t *testing.T, lc *cluster.LocalCluster, exclude string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st := status(t, lc)
		if st.Leader != "" && st.Leader != exclude {
			return st.Leader
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no leader (other than %q)\n%s", exclude, serverLogs(lc))
	return ""
}

func status(t *testing.T, lc *cluster.LocalCluster) cluster.Status {
	t.Helper()
	var targets []cluster.StatusTarget
	for _, p := range lc.Processes {
		if p.Role != "server" {
			continue
		}
		rc, err := cluster.RestConfig(lc.Kubeconfig, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, cluster.StatusTarget{Name: p.Name, APIURL: p.APIURL, Config: rc})
	}
	ctx, cancel := context2(10 * time.Second)
	defer cancel()
	return cluster.CollectStatus(ctx, targets)
}

func process(lc *cluster.LocalCluster, name string) *cluster.Process {
	for i := range lc.Processes {
		if lc.Processes[i].Name == name {
			return &lc.Processes[i]
		}
	}
	return nil
}

// eventually retries f until it succeeds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("not within %s: %v", timeout, err)
}

func saveCluster(lc *cluster.LocalCluster) error { return cluster.SaveLocalCluster(lc) }

// needsRoot skips a test that needs root, except under CI=true, where skipping would hide
// a failure.
func needsRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (containers, cgroups), and CI must run it")
	}
	t.Skip("needs root: runs real containers")
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

// processesUnder lists the pids of running processes whose command line names dir (every
// server and agent of a local cluster is given its data dir below it).
func processesUnder(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), dir+"/") {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(stat), ") Z ") {
			continue // a zombie, reaped by the test binary later
		}
		pids = append(pids, pid)
	}
	return pids
}
