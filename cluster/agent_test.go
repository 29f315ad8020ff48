package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

// TestAgentJoinsGossipAndFailsOverWhenItsServerDies: the agent learns every server from
// gossip, and when the server its kubeconfig points at is killed it keeps renewing its
// Lease and runs new pods through the survivors.
func TestAgentJoinsGossipAndFailsOverWhenItsServerDies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log strings.Builder
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 3, Agents: 1, Runtime: "hollow", Binary: skiffBin, Progress: &log})
	t.Cleanup(func() {
		if err := cluster.Down(dir, true, os.Stderr); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("up: %v\n%s\n%s", err, log.String(), serverLogs(lc))
	}
	agent := process(lc, "agent-1")
	var gossipAddrs []string
	for _, p := range lc.Processes {
		if p.Role == "server" {
			gossipAddrs = append(gossipAddrs, p.GossipAddr)
		}
	}
	// Gossip told the agent of all three servers (it keeps them for its next start).
	eventually(t, 20*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(agent.DataDir, "agent", "gossip-seeds"))
		if err != nil {
			return err
		}
		for _, a := range gossipAddrs {
			if !strings.Contains(string(b), a) {
				return errorf("seeds %q lack server %s", b, a)
			}
		}
		return nil
	})
	// Kill the server the agent's kubeconfig names first.
	if err := syscall.Kill(process(lc, "skiff-1").PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	leader(t, lc, "skiff-1")
	eventually(t, 40*time.Second, func() error {
		out, err := kubectl(t, lc, "skiff-2", "get", "lease", "-n", "kube-node-lease", "agent-1", "-o", "jsonpath={.spec.renewTime}")
		if err != nil {
			return errorf("%v: %s", err, out)
		}
		renewed, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
		if err != nil {
			return err
		}
		if !renewed.After(killed) {
			return errorf("lease last renewed %s, before the kill at %s", renewed, killed)
		}
		return nil
	})
	mustKubectl(t, lc, "skiff-2", "run", "after-kill", "--image=skiff.local/testimage:latest", "--restart=Never")
	eventually(t, 40*time.Second, func() error {
		out, err := kubectl(t, lc, "skiff-3", "get", "pod", "after-kill", "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Running" {
			return errorf("pod phase %q, %v", out, err)
		}
		return nil
	})
}
