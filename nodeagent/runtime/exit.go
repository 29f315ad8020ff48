package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// openPidfd returns a pollable handle on pid. Holding it, the pid cannot be
// confused with a later process that reuses the number.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	// Non-blocking, so os.NewFile registers it with the Go poller: waiting
	// for an exit then costs no thread, and a deadline can interrupt it.
	return os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), nil
}

// withFd runs fn on f's descriptor. Unlike f.Fd, it leaves the descriptor
// non-blocking, which the poller (and so waitExit's deadline) relies on.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}

// waitExit blocks until the process behind pidfd exits (true) or ctx is
// done (false).
func waitExit(ctx context.Context, pidfd *os.File) (bool, error) {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = pidfd.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var exited bool
	err = rc.Read(func(fd uintptr) bool {
		// A pidfd polls readable once its process has exited.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		exited = err == nil && n > 0
		return exited
	})
	if exited {
		return true, nil
	}
	if ctx.Err() != nil {
		return false, nil
	}
	return false, err
}

// collectExit returns the wait status of an exited process and reaps it if
// it is our child. ok is false when the status cannot be known: the process
// was someone else's child (we are a restarted agent) and the kernel is too
// old to keep exit statuses for pidfds (PIDFD_INFO_EXIT, Linux 6.15).
func collectExit(pid int, pidfd *os.File) (ws syscall.WaitStatus, ok bool) {
	for {
		var status unix.WaitStatus
		got, err := unix.Wait4(pid, &status, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err == nil && got == pid {
			return syscall.WaitStatus(status), true
		}
		break // ECHILD: not our child
	}
	// The new parent reaps it soon; the kernel records the status then.
	for range 50 {
		info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
		err := withFd(pidfd, func(fd int) error { return unix.IoctlPidfdInfo(fd, &info) })
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return 0, false // no PIDFD_GET_INFO on this kernel
		}
		if err == nil && info.Mask&unix.PIDFD_INFO_EXIT != 0 {
			return syscall.WaitStatus(info.Exit_code), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, false
}

// exitCode maps a wait status to the shell convention Kubernetes reports.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// oomKills reads how many processes the kernel's OOM killer has killed in
// the container's memory cgroup. It is read at exit, before the cgroup goes,
// so an OOM kill is reported even if no one listened for the event.
func oomKills(cgroupPaths map[string]string) (int, error) {
	file, key := "", "oom_kill"
	if dir, ok := cgroupPaths["memory"]; ok {
		file = filepath.Join(dir, "memory.oom_control") // cgroup v1
	} else if dir, ok := cgroupPaths[""]; ok {
		file = filepath.Join(dir, "memory.events") // cgroup v2
	} else {
		return 0, errors.New("no memory cgroup")
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+" "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no %s counter", file, key)
}
