package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

func newRuntime(t *testing.T, root string) *runtime.Libcontainer {
	t.Helper()
	rt, err := runtime.NewLibcontainer(runtime.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// uniqueID keeps containers of concurrent test runs apart (their cgroups
// share the machine).
func uniqueID(name string) string {
	return fmt.Sprintf("%s-%06x", name, rand.Uint32()&0xffffff)
}

func testSpec(id string, args ...string) runtime.Spec {
	return runtime.Spec{
		ID:           id,
		CgroupParent: "test-" + id,
		Layers:       testLayers,
		Args:         append([]string{"/testimage"}, args...),
	}
}

// start starts a container and removes it when the test ends.
func start(t *testing.T, rt runtime.Runtime, spec runtime.Spec) runtime.Status {
	t.Helper()
	st, err := rt.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("start %s: %v", spec.ID, err)
	}
	t.Cleanup(func() {
		if err := rt.Remove(context.Background(), spec.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("remove %s: %v", spec.ID, err)
		}
	})
	return st
}

func wait(t *testing.T, rt runtime.Runtime, id string) runtime.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := rt.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	return st
}

func TestEchoWritesToLog(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	spec := testSpec(uniqueID("echo"), "echo", "hi")
	start(t, rt, spec)
	st := wait(t, rt, spec.ID)
	if st.State != runtime.StateExited || st.ExitCode != 0 || st.Reason != runtime.ReasonCompleted || st.OOMKilled {
		t.Fatalf("status %+v", st)
	}
	out, err := os.ReadFile(st.StdoutPath)
	if err != nil || string(out) != "hi\n" {
		t.Fatalf("stdout log %q, %v", out, err)
	}
}

func TestExitCodePropagates(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	spec := testSpec(uniqueID("exit"), "exit", "3")
	start(t, rt, spec)
	st := wait(t, rt, spec.ID)
	if st.ExitCode != 3 || st.Reason != runtime.ReasonError {
		t.Fatalf("status %+v", st)
	}
}

func TestStopFallsBackToSIGKILL(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	spec := testSpec(uniqueID("sleep"), "sleep", "600")
	st := start(t, rt, spec)
	waitSigIgnored(t, st.Pid, syscall.SIGTERM)

	const grace = 500 * time.Millisecond
	begin := time.Now()
	st, err := rt.Stop(context.Background(), spec.ID, grace)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < grace || took > 10*time.Second {
		t.Fatalf("stop took %v, want just over %v", took, grace)
	}
	if st.State != runtime.StateExited || st.ExitCode != 128+int(syscall.SIGKILL) {
		t.Fatalf("status %+v", st)
	}
}

func TestStopWithSIGTERMHandlerExitsCleanly(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	spec := testSpec(uniqueID("serve"), "serve", "--port", "8080")
	start(t, rt, spec)
	waitHTTP(t, rt, spec.ID, "http://127.0.0.1:8080/healthz")

	begin := time.Now()
	st, err := rt.Stop(context.Background(), spec.ID, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 0 || time.Since(begin) > 5*time.Second {
		t.Fatalf("status %+v after %v", st, time.Since(begin))
	}
}

func TestOOMKillIsReported(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	spec := testSpec(uniqueID("oom"), "alloc", "200")
	spec.Resources.MemoryLimitBytes = 64 << 20
	start(t, rt, spec)
	st := wait(t, rt, spec.ID)
	if !st.OOMKilled || st.Reason != runtime.ReasonOOMKilled || st.ExitCode != 137 {
		t.Fatalf("status %+v", st)
	}
}

// execOut runs args in container id and returns its exit code and stdout.
func execOut(t *testing.T, rt runtime.Runtime, id string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, err := rt.Exec(ctx, id, runtime.ExecSpec{Args: append([]string{"/testimage"}, args...), Stdout: &out})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", args, id, err)
	}
	return code, out.String()
}

// waitHTTP polls url from inside container id until it answers.
func waitHTTP(t *testing.T, rt runtime.Runtime, id, url string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out := execOut(t, rt, id, "get", url)
		if code == 0 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered in %s", url, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestContainersShareANetworkNamespace(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	server := testSpec(uniqueID("server"), "serve", "--port", "8080")
	server.Hostname = "server-host"
	st := start(t, rt, server)
	waitHTTP(t, rt, server.ID, "http://127.0.0.1:8080/healthz")

	client := testSpec(uniqueID("client"), "get", "http://127.0.0.1:8080/hostname")
	client.CgroupParent = server.CgroupParent // same pod
	client.NetNSPath = fmt.Sprintf("/proc/%d/ns/net", st.Pid)
	start(t, rt, client)
	cst := wait(t, rt, client.ID)
	out, _ := os.ReadFile(cst.StdoutPath)
	if cst.ExitCode != 0 || string(out) != "server-host\n" {
		errOut, _ := os.ReadFile(cst.StderrPath)
		t.Fatalf("client: %+v, stdout %q, stderr %q", cst, out, errOut)
	}

	// A container with a fresh namespace does not see the server.
	alone := testSpec(uniqueID("alone"), "get", "http://127.0.0.1:8080/healthz")
	start(t, rt, alone)
	if ast := wait(t, rt, alone.ID); ast.ExitCode == 0 {
		t.Fatal("a container in its own network namespace reached the server")
	}
}

func TestSpecIsApplied(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	spec := testSpec(uniqueID("spec"), "serve", "--port", "8080")
	spec.Env = []string{"GREETING=hello"}
	spec.Hostname = "spec-host"
	spec.UID, spec.GID = 1000, 1000
	spec.WorkingDir = "/tmp"
	spec.Resources = runtime.Resources{
		MemoryLimitBytes: 128 << 20,
		CPUShares:        512,
		CPUQuotaMicros:   50000,
		CPUPeriodMicros:  100000,
		PidsLimit:        64,
	}
	st := start(t, rt, spec)
	env := waitHTTP(t, rt, spec.ID, "http://127.0.0.1:8080/env")
	if !strings.Contains(env, "GREETING=hello\n") || !strings.Contains(env, "PATH=") {
		t.Errorf("env %q", env)
	}
	if _, host := execOut(t, rt, spec.ID, "get", "http://127.0.0.1:8080/hostname"); host != "spec-host\n" {
		t.Errorf("hostname %q", host)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.Pid))
	if err != nil || !strings.Contains(string(status), "Uid:\t1000\t1000\t1000\t1000") {
		t.Errorf("init not running as uid 1000: %v\n%s", err, status)
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", st.Pid))
	if err != nil || !strings.HasSuffix(cwd, "/tmp") {
		t.Errorf("cwd %q, %v", cwd, err)
	}
	for file, want := range map[string]string{
		"memory/memory.limit_in_bytes": "134217728",
		"cpu/cpu.shares":               "512",
		"cpu/cpu.cfs_quota_us":         "50000",
		"cpu/cpu.cfs_period_us":        "100000",
		"pids/pids.max":                "64",
	} {
		ctrl, name, _ := strings.Cut(file, "/")
		path := filepath.Join("/sys/fs/cgroup", ctrl, "skiff", spec.CgroupParent, spec.ID, name)
		got, err := os.ReadFile(path)
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s = %q, %v; want %s", path, got, err, want)
		}
	}
}

func TestRecoverAfterRestart(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	rt1, err := runtime.NewLibcontainer(runtime.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	running := testSpec(uniqueID("survivor"), "sleep", "600")
	st, err := rt1.Start(context.Background(), running)
	if err != nil {
		t.Fatal(err)
	}
	finished := testSpec(uniqueID("finished"), "exit", "7")
	if _, err := rt1.Start(context.Background(), finished); err != nil {
		t.Fatal(err)
	}
	wait(t, rt1, finished.ID)
	rt1.Close() // the agent goes away; its containers do not

	rt2 := newRuntime(t, root)
	list, err := rt2.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]runtime.Status{}
	for _, s := range list {
		byID[s.ID] = s
	}
	got := byID[running.ID]
	if got.State != runtime.StateRunning || got.Pid != st.Pid || !got.StartedAt.Equal(st.StartedAt) {
		t.Fatalf("after restart: %+v, before: %+v", got, st)
	}
	if f := byID[finished.ID]; f.State != runtime.StateExited || f.ExitCode != 7 {
		t.Fatalf("finished container after restart: %+v", f)
	}
	if err := syscall.Kill(st.Pid, 0); err != nil {
		t.Fatalf("container process gone: %v", err)
	}

	// The new instance supervises it fully.
	stopped, err := rt2.Stop(context.Background(), running.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.State != runtime.StateExited || stopped.ExitCode != 137 {
		t.Fatalf("stopped: %+v", stopped)
	}
	for _, id := range []string{running.ID, finished.ID} {
		if err := rt2.Remove(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRemoveLeavesNothingBehind(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	rt := newRuntime(t, root)
	spec := testSpec(uniqueID("removed"), "sleep", "600")
	spec.Resources.MemoryLimitBytes = 64 << 20
	if _, err := rt.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	podCgroup := filepath.Join("/sys/fs/cgroup/memory/skiff", spec.CgroupParent)
	if _, err := os.Stat(filepath.Join(podCgroup, spec.ID)); err != nil {
		t.Fatalf("cgroup not created: %v", err)
	}

	if err := rt.Remove(context.Background(), spec.ID); err != nil { // still running
		t.Fatal(err)
	}
	assertNoCgroup(t, spec.CgroupParent)
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mountinfo), root) {
		t.Errorf("mount under %s left behind:\n%s", root, mountinfo)
	}
	for _, dir := range []string{"state", "containers", "logs"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil || len(entries) != 0 {
			t.Errorf("%s/ holds %v (%v)", dir, entries, err)
		}
	}
	if _, err := rt.Status(context.Background(), spec.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("status after remove: %v", err)
	}
	if list, _ := rt.List(context.Background()); len(list) != 0 {
		t.Errorf("list after remove: %+v", list)
	}
}

func TestStartRejectsDuplicatesAndBadSpecs(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	spec := testSpec(uniqueID("dup"), "sleep", "600")
	start(t, rt, spec)
	if _, err := rt.Start(context.Background(), spec); !errors.Is(err, runtime.ErrExists) {
		t.Errorf("second start: %v", err)
	}
	for _, bad := range []runtime.Spec{
		{ID: "../x", Layers: testLayers, Args: []string{"/testimage"}},
		{ID: "nocmd", Layers: testLayers},
		{ID: "nolayers", Args: []string{"/testimage"}},
	} {
		if _, err := rt.Start(context.Background(), bad); !errors.Is(err, runtime.ErrInvalid) {
			t.Errorf("start %+v: %v", bad, err)
		}
	}
	missing := testSpec(uniqueID("missing"), "nope")
	missing.Args = []string{"/no/such/binary"}
	if _, err := rt.Start(context.Background(), missing); err == nil {
		t.Error("start of a missing binary succeeded")
	}
	if _, err := rt.Status(context.Background(), missing.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("failed start left a container: %v", err)
	}
	assertNoCgroup(t, missing.CgroupParent)
}

// assertNoCgroup checks that no hierarchy holds the pod-level cgroup.
func assertNoCgroup(t *testing.T, parent string) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*/skiff", parent))
	if len(dirs) != 0 {
		t.Errorf("cgroups left behind: %v", dirs)
	}
}

// TestStartLatency measures Start (create, mount, run) and logs the median.
func TestStartLatency(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	const n = 15
	var took []time.Duration
	for i := range n {
		spec := testSpec(uniqueID(fmt.Sprintf("lat%d", i)), "exit", "0")
		begin := time.Now()
		start(t, rt, spec)
		took = append(took, time.Since(begin))
		wait(t, rt, spec.ID)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("container start over %d runs: median %v, min %v, max %v", n, took[n/2], took[0], took[n-1])
}

// waitSigIgnored polls /proc until pid ignores sig, so that signalling it is
// not a race against the program's start-up.
func waitSigIgnored(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if mask, ok := strings.CutPrefix(line, "SigIgn:\t"); ok {
				var bits uint64
				fmt.Sscanf(mask, "%x", &bits)
				if bits&(1<<(uint(sig)-1)) != 0 {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d never ignored %v", pid, sig)
}
