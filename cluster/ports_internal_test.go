package cluster

import "testing"

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
