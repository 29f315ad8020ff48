package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestReniceSelfReachesEveryThread: a hollow-nodes process must be nice on every thread,
// the ones that exist when it renices itself and the ones the Go runtime starts later.
func TestReniceSelfReachesEveryThread(t *testing.T) {
	if err := reniceSelf(1); err != nil { // 1: the test binary's other tests barely notice
		t.Fatal(err)
	}
	// Force new OS threads after the renice: a goroutine locked to its thread that blocks
	// makes the runtime start another for the rest.
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			<-release
		}()
	}
	defer func() { close(release); wg.Wait() }()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread exited
		}
		// Fields after the command's closing parenthesis: state is field 3, nice field 19.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if nice, _ := strconv.Atoi(fields[19-3]); nice != 1 {
			t.Errorf("thread %s has nice %d, want 1", task.Name(), nice)
		}
	}
	if len(tasks) < 5 {
		t.Errorf("only %d threads: the locked goroutines did not start new ones", len(tasks))
	}
}
