package controllers_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const kubectlBin = "/usr/bin/kubectl"

// kubectl runs the real kubectl against server i of the control plane and returns its
// combined output.
func (c *controlPlane) kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skip("kubectl not installed")
	}
	ctx, cancel := context.WithTimeout(c.ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlBin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.cp.Kubeconfig(1), "HOME="+t.TempDir())
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustKubectl runs kubectl and fails the test unless it succeeds with want in its output.
func (c *controlPlane) mustKubectl(t *testing.T, stdin, want string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := c.kubectl(t, stdin, args...)
	if d := time.Since(start); d > 3*time.Second {
		t.Logf("kubectl %s took %s", strings.Join(args, " "), d.Round(100*time.Millisecond))
	}
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("kubectl %s: want %q in output:\n%s", strings.Join(args, " "), want, out)
	}
	return out
}
