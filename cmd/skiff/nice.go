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
