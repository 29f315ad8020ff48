package network

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestAddressesAreReusedLast: as host-local IPAM, a released address is handed out again
// only after every other one (other pods' neighbour caches still point it at the old veth),
// a restarted manager goes on where the last one stopped, and the range wraps around.
func TestAddressesAreReusedLast(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ips"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, cidr, _ := net.ParseCIDR("10.244.7.0/29") // usable .2 to .6 (.1 is the gateway)
	m := &Manager{cfg: Config{StateDir: dir}}
	got := func(id string) string {
		t.Helper()
		ip, err := m.allocate(id, cidr)
		if err != nil {
			t.Fatal(err)
		}
		return ip.String()
	}
	if a := got("a"); a != "10.244.7.2" {
		t.Fatalf("first address %s", a)
	}
	if b := got("b"); b != "10.244.7.3" {
		t.Fatalf("second address %s", b)
	}
	if err := m.release("a"); err != nil {
		t.Fatal(err)
	}
	if c := got("c"); c != "10.244.7.4" {
		t.Fatalf("after releasing .2, the next pod got %s, want .4 (not the address just released)", c)
	}
	m = &Manager{cfg: Config{StateDir: dir}} // a restarted agent
	if d := got("d"); d != "10.244.7.5" {
		t.Fatalf("after a restart: %s, want .5", d)
	}
	if e, f := got("e"), got("f"); e != "10.244.7.6" || f != "10.244.7.2" {
		t.Fatalf("wrapping: %s, %s; want .6 then the free .2", e, f)
	}
	if _, err := m.allocate("g", cidr); err == nil {
		t.Fatal("allocated from a full range")
	}
	if again := got("c"); again != "10.244.7.4" {
		t.Fatalf("a pod's own address again: %s", again)
	}
}
