package cluster

import (
	"maps"
	"slices"
	"testing"
)

// TestFreePortsNeverRepeatsWithinACluster: every process of a local cluster gets ports of
// its own, although each call releases its ports before the next (the kernel may hand one
// out again, and a server then failed with "address already in use").
func TestFreePortsNeverRepeatsWithinACluster(t *testing.T) {
	taken := map[int]bool{}
	seen := map[int]bool{}
	for range 200 {
		ports, err := freePorts(3, taken)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
}

// TestRealAgentsRunLibcontainerBesideHollowOnes: a cluster of hollow agents with real ones
// numbered after them, each real one with the test image and its own cgroup root.
func TestRealAgentsRunLibcontainerBesideHollowOnes(t *testing.T) {
	dir := t.TempDir()
	lc, err := planLocalCluster(dir, UpConfig{Servers: 1, Agents: 2, RealAgents: 1, Runtime: "hollow", TestImageBinary: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	runtimes := map[string]string{}
	for _, p := range lc.Processes {
		if p.Role != "agent" {
			continue
		}
		for i, a := range p.Args {
			if a == "--runtime" {
				runtimes[p.Name] = p.Args[i+1]
			}
		}
		real := slices.Contains(p.Args, "--test-image-binary")
		if real != (runtimes[p.Name] == "libcontainer") {
			t.Errorf("%s: runtime %s, test image %v", p.Name, runtimes[p.Name], real)
		}
		if root := agentCgroupRoot(dir, p.Name); !slices.Contains(p.Args, root) {
			t.Errorf("%s: no --cgroup-root %s in %v", p.Name, root, p.Args)
		}
	}
	want := map[string]string{"agent-1": "hollow", "agent-2": "hollow", "agent-3": "libcontainer"}
	if !maps.Equal(runtimes, want) {
		t.Fatalf("agents' runtimes %v, want %v", runtimes, want)
	}
}
