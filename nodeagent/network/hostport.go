package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// HostPort maps a port of the node to a port of a pod, as a container
// port's hostPort does (the CNI portmap plugin's job under the kubelet).
type HostPort struct {
	// Protocol is "tcp", "udp" or "sctp".
	Protocol string `json:"protocol"`
	// HostIP limits the mapping to one of the node's addresses; "" (or
	// 0.0.0.0) takes every one of them.
	HostIP        string `json:"hostIP,omitempty"`
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
}

// hostPortRecord is a pod's mappings on disk, <StateDir>/hostports/<id>:
// the kernel's table is rebuilt from these files, so a restarted agent
// writes the same rules before it has seen any pod again.
type hostPortRecord struct {
	PodIP string     `json:"podIP"`
	Ports []HostPort `json:"ports"`
}

// hostPortMark asks the table's postrouting chain to masquerade a
// connection to a host port (the service proxy uses 0x4000 for its own).
const hostPortMark = "0x2000"

func (m *Manager) hostPortFile(id string) string {
	return filepath.Join(m.cfg.StateDir, "hostports", id)
}

// SetHostPorts maps the node's ports to pod id's address (nil or empty
// ports: none) and rewrites the node's host-port table. It returns the
// mappings that were not there before, whose stale UDP conntrack entries
// the caller should clear: a client that sent to the port before the
// mapping existed keeps its un-DNATed entry while it keeps sending.
func (m *Manager) SetHostPorts(id string, podIP net.IP, ports []HostPort) ([]HostPort, error) {
	m.hpMu.Lock()
	defer m.hpMu.Unlock()
	var old hostPortRecord
	_ = readRecord(m.hostPortFile(id), &old)
	if len(ports) == 0 {
		if len(old.Ports) == 0 {
			return nil, nil
		}
		return nil, m.removeHostPortsLocked(id)
	}
	if podIP.To4() == nil {
		return nil, fmt.Errorf("host ports for %s: pod address %v is not IPv4", id, podIP)
	}
	rec := hostPortRecord{PodIP: podIP.String(), Ports: ports}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(m.hostPortFile(id)), 0o700); err != nil {
		return nil, fmt.Errorf("host ports: %w", err)
	}
	tmp := m.hostPortFile(id) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, fmt.Errorf("host ports: %w", err)
	}
	if err := os.Rename(tmp, m.hostPortFile(id)); err != nil {
		return nil, fmt.Errorf("host ports: %w", err)
	}
	if err := m.syncHostPortsLocked(); err != nil {
		return nil, err
	}
	var added []HostPort
	for _, p := range ports {
		if old.PodIP != rec.PodIP || !slices.Contains(old.Ports, p) {
			added = append(added, p)
		}
	}
	return added, nil
}

// removeHostPorts drops pod id's mappings, if it had any.
func (m *Manager) removeHostPorts(id string) error {
	m.hpMu.Lock()
	defer m.hpMu.Unlock()
	if _, err := os.Stat(m.hostPortFile(id)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return m.removeHostPortsLocked(id)
}

func (m *Manager) removeHostPortsLocked(id string) error {
	if err := os.Remove(m.hostPortFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("host ports: %w", err)
	}
	return m.syncHostPortsLocked()
}

// SyncHostPorts rewrites the host-port table from the mappings on disk
// (after a restart, or to repair the kernel's copy).
func (m *Manager) SyncHostPorts() error {
	m.hpMu.Lock()
	defer m.hpMu.Unlock()
	return m.syncHostPortsLocked()
}

func (m *Manager) syncHostPortsLocked() error {
	recs := map[string]hostPortRecord{}
	entries, err := os.ReadDir(filepath.Join(m.cfg.StateDir, "hostports"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("host ports: %w", err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		var r hostPortRecord
		if err := readRecord(filepath.Join(m.cfg.StateDir, "hostports", e.Name()), &r); err == nil {
			recs[e.Name()] = r
		}
	}
	if m.nft == nil {
		nft, err := knftables.New(knftables.IPv4Family, m.cfg.HostPortTable)
		if err != nil && len(recs) == 0 {
			return nil // no nft, and nothing it would have to do
		}
		if err != nil {
			return fmt.Errorf("host ports need nftables: %w", err)
		}
		m.nft = nft
	}
	tx := m.nft.NewTransaction()
	renderHostPorts(tx, m.cfg.Bridge, recs)
	if err := m.nft.Run(context.Background(), tx); err != nil {
		return fmt.Errorf("host ports: nft: %w", err)
	}
	return nil
}

// renderHostPorts replaces the whole table in tx: a few rules per mapping,
// so writing them all is cheap, and a table rebuilt in one transaction can
// hold nothing stale. With no mapping the table goes away.
func renderHostPorts(tx *knftables.Transaction, bridge string, recs map[string]hostPortRecord) {
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if len(recs) == 0 {
		return
	}
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff host ports")})
	base := func(name string, t knftables.BaseChainType, hook knftables.BaseChainHook, prio knftables.BaseChainPriority, rules ...string) {
		tx.Add(&knftables.Chain{Name: name, Type: &t, Hook: &hook, Priority: &prio})
		for _, r := range rules {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}
	const dispatch = "hostports"
	tx.Add(&knftables.Chain{Name: dispatch})
	// Only what is addressed to the node itself, from outside (prerouting)
	// or from the node (output), is a host port's.
	base("prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, "fib daddr type local jump "+dispatch)
	base("output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority, "fib daddr type local jump "+dispatch)
	base("postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority,
		"mark and "+hostPortMark+" == 0 return",
		"mark set mark xor "+hostPortMark,
		"masquerade")
	ids := make([]string, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := recs[id]
		for _, p := range r.Ports {
			proto := strings.ToLower(p.Protocol)
			chain := hostPortChain(id, p)
			match := fmt.Sprintf("meta l4proto %s th dport %d", proto, p.HostPort)
			if p.HostIP != "" && !net.ParseIP(p.HostIP).IsUnspecified() {
				match = "ip daddr " + p.HostIP + " " + match
			}
			tx.Add(&knftables.Chain{Name: chain})
			tx.Add(&knftables.Rule{Chain: dispatch, Rule: match + " jump " + chain})
			for _, rule := range []string{
				// A pod of this node reaching its own node's host port is
				// masqueraded, so that the answer comes back through the
				// node to be un-DNATed: sent straight over the bridge it
				// would not be (portmap masquerades only the pod itself
				// and otherwise relies on br_netfilter).
				"iifname " + strconv.Quote(bridge) + " mark set mark or " + hostPortMark,
				// So is the node's own loopback, which a pod cannot answer.
				"ip saddr 127.0.0.0/8 mark set mark or " + hostPortMark,
				fmt.Sprintf("meta l4proto %s dnat to %s", proto, net.JoinHostPort(r.PodIP, strconv.Itoa(int(p.ContainerPort)))),
			} {
				tx.Add(&knftables.Rule{Chain: chain, Rule: rule})
			}
		}
	}
}

// hostPortChain names a mapping's chain readably, with a hash of the pod's
// id to keep two pods' claims of one port apart.
func hostPortChain(id string, p HostPort) string {
	sum := sha256.Sum256([]byte(id))
	ip := "any"
	if p.HostIP != "" && !net.ParseIP(p.HostIP).IsUnspecified() {
		ip = p.HostIP
	}
	return fmt.Sprintf("hostport-%s-%s-%d-%s", strings.ToLower(p.Protocol), ip, p.HostPort, hex.EncodeToString(sum[:])[:8])
}

func readRecord(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}
