package cluster_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

func TestPartitionedLeaderInItsOwnNetnsIsReplaced(t *testing.T) {
	needsRoot(t)
	dir := filepath.Join(t.TempDir(), "c")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 3, Agents: 0, Binary: skiffBin, Netns: true})
	t.Cleanup(func() { _ = cluster.Down(dir, true, os.Stderr) })
	if err != nil {
		t.Fatalf("up --netns: %v\n%s", err, serverLogs(lc))
	}
	for _, p := range lc.Processes {
		if p.Netns == "" || !strings.Contains(p.APIURL, p.IP) {
			t.Fatalf("%s is not in its own namespace: %+v", p.Name, p)
		}
	}
	old := leader(t, lc, "")
	mustKubectl(t, lc, old, "create", "configmap", "before")
	if err := cluster.SetLinkUp(process(lc, old), false); err != nil {
		t.Fatal(err)
	}
	// The majority elects a leader and takes writes; the cut-off server cannot be reached.
	var survivor string
	eventually(t, 20*time.Second, func() error {
		for _, p := range lc.Processes {
			if p.Name == old {
				continue
			}
			if _, err := kubectl(t, lc, p.Name, "create", "configmap", "during"); err == nil {
				survivor = p.Name
				return nil
			}
		}
		return errors.New("no write through the majority yet")
	})
	if _, err := kubectl(t, lc, old, "get", "ns", "--request-timeout=2s"); err == nil {
		t.Fatal("the partitioned server answered")
	}
	if err := cluster.SetLinkUp(process(lc, old), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		_, err := kubectl(t, lc, old, "get", "configmap", "during")
		return err
	})
	t.Logf("partitioned %s; %s took the write; healed and caught up", old, survivor)
	// Down --purge removes the namespaces and the bridge.
	if err := cluster.Down(dir, true, os.Stderr); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	for _, p := range lc.Processes {
		if strings.Contains(string(out), p.Netns) {
			t.Fatalf("namespace %s left behind", p.Netns)
		}
	}
	if lc.Netns != nil && exec.Command("ip", "link", "show", lc.Netns.Bridge).Run() == nil {
		t.Fatalf("bridge %s left behind", lc.Netns.Bridge)
	}
}
