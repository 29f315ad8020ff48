package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// reniceSelf lowers the scheduling priority of every thread of this process. On Linux a
// nice value belongs to a thread (setpriority with a thread id), and a new thread inherits
// its creator's: once every existing thread is reniced, the Go runtime's later threads are
// too. Passes repeat until one finds no thread left to change, so a thread started during
// a pass is not missed.
func reniceSelf(nice int) error {
	done := map[int]bool{}
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
				return fmt.Errorf("renice thread %d: %w", tid, err)
			}
			done[tid], changed = true, true
		}
		if !changed {
			return nil
		}
	}
}

// raiseFileLimit lifts this process's open-file limit to at least want, raising the hard
// limit too when it may (root). Many hollow nodes in one process each hold a listener and
// their API connections: 5,000 of them ran out of this machine's 20,000 descriptors, which
// thousands of separate kubelets never share. It returns the limit in force.
func raiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			return want, nil
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
