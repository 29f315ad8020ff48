package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// helperEnv makes the test binary act as a freshly started agent instead of
// running tests: "stop ROOT ID" adopts container ID under ROOT, stops it
// and prints its final status as JSON.
const helperEnv = "SKIFF_RUNTIME_TEST_HELPER"

func runHelper(arg string) int {
	fields := strings.Fields(arg)
	if len(fields) != 3 || fields[0] != "stop" {
		fmt.Fprintf(os.Stderr, "bad %s=%q\n", helperEnv, arg)
		return 2
	}
	rt, err := runtime.NewLibcontainer(runtime.Config{Root: fields[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := rt.Stop(ctx, fields[2], 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(st); err != nil {
		return 1
	}
	return 0
}

// TestAdoptedByAnotherProcess is an agent restart for real: the container
// was started by this process, and a different process adopts and stops it.
// That process is not the container's parent, so it cannot wait(2) for it;
// the exit code must come from the pidfd (PIDFD_INFO_EXIT, Linux 6.15+).
func TestAdoptedByAnotherProcess(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	rt, err := runtime.NewLibcontainer(runtime.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(uniqueID("adopted"), "serve", "--port", "8080")
	st, err := rt.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, rt, spec.ID, "http://127.0.0.1:8080/healthz")
	rt.Close()
	// Stand in for the machine's init, which reaps a dead agent's orphans.
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(st.Pid, &ws, 0, nil); !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=stop "+root+" "+spec.ID)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper agent: %v\n%s", err, out)
	}
	<-reaped
	var got runtime.Status
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if got.Reason == runtime.ReasonUnknown && !kernelKeepsExitStatus() {
		t.Skip("kernel lacks PIDFD_INFO_EXIT: an adopted container's exit code is unknowable")
	}
	if got.State != runtime.StateExited || got.ExitCode != 0 || got.Reason != runtime.ReasonCompleted {
		t.Fatalf("stopped by the new agent: %+v", got)
	}

	rt2 := newRuntime(t, root)
	if got, err := rt2.Status(context.Background(), spec.ID); err != nil || got.ExitCode != 0 {
		t.Fatalf("recorded exit: %+v, %v", got, err)
	}
	if err := rt2.Remove(context.Background(), spec.ID); err != nil {
		t.Fatal(err)
	}
	assertNoCgroup(t, spec.CgroupParent)
}

// kernelKeepsExitStatus probes for PIDFD_GET_INFO on our own pidfd.
func kernelKeepsExitStatus() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
	return unix.IoctlPidfdInfo(fd, &info) == nil
}

// TestRecoverSurvivesDamagedRecords: a record torn by a crash must not keep
// the agent from starting; the container is reported lost and removable.
func TestRecoverSurvivesDamagedRecords(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	rt := newRuntime(t, root)
	rt.Close()
	dir := root + "/containers/torn"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/meta.json", []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	rt2 := newRuntime(t, root)
	st, err := rt2.Status(context.Background(), "torn")
	if err != nil || st.State != runtime.StateExited || st.Reason != runtime.ReasonUnknown {
		t.Fatalf("torn container: %+v, %v", st, err)
	}
	if err := rt2.Remove(context.Background(), "torn"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("container dir left: %v", err)
	}
}
