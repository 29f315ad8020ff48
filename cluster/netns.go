package cluster

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// netnsPlan puts each node of a local cluster in its own network namespace on a bridge,
// with its own address, so that networking and partitions are real: cutting a node's veth
// cuts it off from everyone. The subnet is private to this machine's sandbox and derived
// from the cluster's directory, so two clusters on one machine do not collide.
type netnsPlan struct {
	Bridge string `json:"bridge"` // on the host, holding HostIP
	Subnet string `json:"subnet"` // a /24
	HostIP string `json:"hostIP"`
	prefix string
}

func planNetns(dir string) netnsPlan {
	h := sha256.Sum256([]byte(dir))
	n := 20 + int(binary.BigEndian.Uint16(h[:2])%200) // 10.213.20.0/24 .. 10.213.219.0/24
	return netnsPlan{
		Bridge: fmt.Sprintf("skbr%x", h[:3]),
		Subnet: fmt.Sprintf("10.213.%d.0/24", n),
		HostIP: fmt.Sprintf("10.213.%d.1", n),
		prefix: fmt.Sprintf("10.213.%d.", n),
	}
}

// nodeIP is the address of the i-th node (from 0).
func (p netnsPlan) nodeIP(i int) string { return fmt.Sprintf("%s%d", p.prefix, 10+i) }

// nsName is the network namespace of a node of the cluster in dir.
func nsName(dir, node string) string {
	h := sha256.Sum256([]byte(dir))
	return fmt.Sprintf("sk%x-%s", h[:3], node)
}

// vethName is the host side of a node's veth (at most 15 characters).
func vethName(ns string) string {
	h := sha256.Sum256([]byte(ns))
	return fmt.Sprintf("skv%x", h[:5])
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ensureBridge creates the host bridge with its address, if missing, and lets the nodes
// reach beyond this machine as hosts of a real network would: forwarded and masqueraded
// behind the host's address (without that, an agent's DNS forwarding to the host's
// resolvers got no answer).
func (p netnsPlan) ensureBridge() error {
	if ip("link", "show", p.Bridge) != nil {
		for _, a := range [][]string{
			{"link", "add", p.Bridge, "type", "bridge"},
			{"addr", "add", p.HostIP + "/24", "dev", p.Bridge},
			{"link", "set", p.Bridge, "up"},
		} {
			if err := ip(a...); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable ip forwarding: %w", err)
	}
	// A table of this cluster's own, replaced whole; nft missing: the nodes stay local.
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	rules := fmt.Sprintf(`table ip %[1]s
delete table ip %[1]s
table ip %[1]s {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[2]s oifname != %[3]q masquerade
	}
}
`, p.natTable(), p.Subnet, p.Bridge)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: masquerade for %s: %v: %s", p.Subnet, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// natTable is the host's nftables table that masquerades the nodes' traffic.
func (p netnsPlan) natTable() string { return "skiff-" + p.Bridge }

// ensureNode creates a node's namespace with a veth to the bridge and its address, if
// missing.
func (p netnsPlan) ensureNode(ns, addr string) error {
	if ip("netns", "exec", ns, "true") == nil {
		return nil
	}
	host := vethName(ns)
	for _, a := range [][]string{
		{"netns", "add", ns},
		{"link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", host, "master", p.Bridge},
		{"link", "set", host, "up"},
		{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "route", "add", "default", "via", p.HostIP},
	} {
		if err := ip(a...); err != nil {
			return err
		}
	}
	return nil
}

// removeNetns deletes the nodes' namespaces (their veths go with them) and the bridge.
func removeNetns(lc *LocalCluster) {
	if lc.Netns == nil {
		return
	}
	for _, p := range lc.Processes {
		if p.Netns != "" {
			_ = ip("netns", "del", p.Netns)
		}
	}
	_ = ip("link", "del", lc.Netns.Bridge)
	_ = exec.Command("nft", "delete", "table", "ip", lc.Netns.natTable()).Run()
}

// SetLinkUp cuts a node off from the others (false) or reconnects it (true) by taking the
// host side of its veth down or up: a real partition, for the chaos benchmarks.
func SetLinkUp(p *Process, up bool) error {
	if p.Netns == "" {
		return fmt.Errorf("cluster: %s is not in its own network namespace (skiff up --netns)", p.Name)
	}
	state := "down"
	if up {
		state = "up"
	}
	return ip("link", "set", vethName(p.Netns), state)
}
