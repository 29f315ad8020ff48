package cluster

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// WaitGone returns once a killed process has exited (and been reaped), and reports a
// process that does not exit in time: StartProcess waits on it before starting a process
// again, so that the new one finds its ports free.
func TestWaitGoneWaitsForAKilledProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	if WaitGone(pid, 100*time.Millisecond) {
		t.Fatal("WaitGone: a running process reported gone")
	}
	go func() { _ = cmd.Wait() }() // the reaper, as StartProcess runs one
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !WaitGone(pid, 5*time.Second) {
		t.Fatal("WaitGone: a killed process still reported alive after 5 s")
	}
	if !WaitGone(0, time.Millisecond) {
		t.Fatal("WaitGone: no pid (a process never started) must not wait")
	}
}
