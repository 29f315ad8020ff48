package initgc

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMain plays libcontainer's init when run as `<test binary> init`: it reports what the
// package's initializer left (collector percent, Ps) and exits.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		fmt.Printf("active=%v gc=%d procs=%d\n", Active, debug.SetGCPercent(100), runtime.GOMAXPROCS(0))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestInitProcessRunsWithoutCollectorOnOneP(t *testing.T) {
	out, err := exec.Command(os.Args[0], Arg).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "active=true gc=-1 procs=1" {
		t.Errorf("init process: %q, want collector off (-1) and one P", got)
	}
}

func TestOtherProcessesKeepTheDefaults(t *testing.T) {
	if Active {
		t.Fatal("Active in a process not started as init")
	}
	// GOGC is unset under go test unless the caller set it; the collector must be on.
	if os.Getenv("GOGC") == "" {
		if pct := debug.SetGCPercent(100); pct != 100 {
			t.Errorf("collector percent %d, want the default 100", pct)
		}
	}
}
