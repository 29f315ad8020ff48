package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func runCapture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestEchoJoinsArgs(t *testing.T) {
	code, out, _ := runCapture(t, "echo", "hi", "there")
	if code != 0 || out != "hi there\n" {
		t.Fatalf("echo: code %d, out %q", code, out)
	}
}

func TestExitReturnsCode(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want int
	}{{"0", 0}, {"3", 3}, {"255", 255}, {"256", 2}, {"x", 2}} {
		if code, _, _ := runCapture(t, "exit", tc.arg); code != tc.want {
			t.Errorf("exit %s: got %d, want %d", tc.arg, code, tc.want)
		}
	}
}

func TestUnknownSubcommandIsUsageError(t *testing.T) {
	code, _, errOut := runCapture(t, "init")
	if code != 2 || !strings.Contains(errOut, "unknown subcommand") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
}

func TestWriteCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if code, _, errOut := runCapture(t, "write", path, "content"); code != 0 {
		t.Fatalf("write: code %d: %s", code, errOut)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "content" {
		t.Fatalf("file holds %q, %v", got, err)
	}
}

func TestSleepReturns(t *testing.T) {
	start := time.Now()
	if code, _, _ := runCapture(t, "sleep", "0.05"); code != 0 {
		t.Fatalf("sleep: code %d", code)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("sleep returned early")
	}
}

func TestAllocateTouchesMemory(t *testing.T) {
	held := allocate(3)
	if len(held) != 3 || len(held[2]) != mib || held[2][0] != 1 {
		t.Fatalf("allocate(3) returned %d chunks", len(held))
	}
}

func TestGetPrintsBodyAndFailsOnErrorStatus(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()

	code, out, _ := runCapture(t, "get", srv.URL+"/healthz")
	if code != 0 || out != "ok\n" {
		t.Fatalf("get /healthz: code %d, out %q", code, out)
	}
	if code, _, _ := runCapture(t, "get", srv.URL+"/nope"); code != 1 {
		t.Fatalf("get /nope: code %d, want 1", code)
	}
}

func httpDo(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestReadinessToggles(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()

	steps := []struct {
		method, path string
		want         int
	}{
		{"GET", "/readyz", 200},
		{"POST", "/readyz/fail", 200},
		{"GET", "/readyz", 503},
		{"GET", "/healthz", 200}, // liveness is independent of readiness
		{"POST", "/readyz/ok", 200},
		{"GET", "/readyz", 200},
		{"GET", "/readyz/fail", 405},
	}
	for _, s := range steps {
		if code, body := httpDo(t, s.method, srv.URL+s.path); code != s.want {
			t.Fatalf("%s %s: got %d (%q), want %d", s.method, s.path, code, body, s.want)
		}
	}
}

func TestEnvAndHostnameEndpoints(t *testing.T) {
	t.Setenv("TESTIMAGE_MARKER", "42")
	srv := httptest.NewServer(newHandler())
	defer srv.Close()

	if _, body := httpDo(t, "GET", srv.URL+"/env"); !strings.Contains(body, "TESTIMAGE_MARKER=42\n") {
		t.Fatalf("/env lacks marker: %q", body)
	}
	host, _ := os.Hostname()
	if _, body := httpDo(t, "GET", srv.URL+"/hostname"); body != host+"\n" {
		t.Fatalf("/hostname = %q, want %q", body, host)
	}
}

func TestServeStopsCleanlyOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, io.Discard) }()
	if code, _ := httpDo(t, "GET", "http://"+ln.Addr().String()+"/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// waitSigIgnored polls /proc until pid ignores sig, so that signalling it is
// not a race against the program's start-up.
func waitSigIgnored(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if mask, ok := strings.CutPrefix(line, "SigIgn:\t"); ok {
				bits, err := strconv.ParseUint(mask, 16, 64)
				if err == nil && bits&(1<<(uint(sig)-1)) != 0 {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d never ignored %v", pid, sig)
}

// buildBinary builds the real static binary, as the test image ships it.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "testimage")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)

	t.Run("ServeExitsZeroOnSIGTERM", func(t *testing.T) {
		cmd := exec.Command(bin, "serve", "--port", "0")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "listening on ") {
			t.Fatalf("first line %q, %v", line, err)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v to stop", d)
		}
	})

	t.Run("SleepIgnoresSIGTERM", func(t *testing.T) {
		cmd := exec.Command(bin, "sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		waitSigIgnored(t, cmd.Process.Pid, syscall.SIGTERM)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Fatalf("sleep exited on SIGTERM: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		cmd.Process.Kill()
		<-done
	})

	t.Run("IsStatic", func(t *testing.T) {
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		// A dynamically linked ELF names its interpreter in a PT_INTERP segment.
		if bytes.Contains(data, []byte("/lib64/ld-linux")) || bytes.Contains(data, []byte("/lib/ld-linux")) {
			t.Fatal("binary is dynamically linked")
		}
	})
}

func TestGetCountPrintsEachBody(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	code, out, _ := runCapture(t, "get", "--count", "3", srv.URL+"/healthz")
	if code != 0 || out != "ok\nok\nok\n" {
		t.Fatalf("get --count 3: code %d, out %q", code, out)
	}
}

func TestGetSASendsTokenAndTrustsCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	old := saDir
	saDir = dir
	defer func() { saDir = old }()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("tok123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCapture(t, "get", srv.URL); code != 1 {
		t.Fatalf("get without --sa trusted an unknown CA: code %d", code)
	}
	code, out, _ := runCapture(t, "get", "--sa", srv.URL)
	if code != 0 || out != "Bearer tok123\n" {
		t.Fatalf("get --sa: code %d, out %q", code, out)
	}
}

func TestResolvePrintsAddresses(t *testing.T) {
	code, out, _ := runCapture(t, "resolve", "127.0.0.1")
	if code != 0 || out != "127.0.0.1\n" {
		t.Fatalf("resolve 127.0.0.1: code %d, out %q", code, out)
	}
	if code, _, _ := runCapture(t, "resolve", "no-such-name.invalid"); code != 1 {
		t.Fatalf("resolve of an unknown name: code %d, want 1", code)
	}
}
