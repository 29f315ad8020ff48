// Package network gives each pod of a node its network: a network
// namespace, a veth from it to the node's bridge, and an address from the
// node's pod CIDR; routes to other nodes' pod CIDRs go through those nodes'
// addresses (host-gw); host ports are DNATed to pods in an nftables table
// of their own, as the CNI portmap plugin does. Without a pod CIDR a pod's
// namespace holds only loopback.
package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"sigs.k8s.io/knftables"
)

// Config configures a Manager.
type Config struct {
	// StateDir keeps namespaces and address allocations:
	//	<StateDir>/netns/<id>  the pinned namespace
	//	<StateDir>/ips/<ip>    holds the id the address is allocated to
	StateDir string
	// Bridge is the node bridge's name; default "skiff0".
	Bridge string
	// MTU of the bridge and veths; default 1500.
	MTU int
	// HostPortTable is the nftables table (family ip) that maps host
	// ports to pods; default "skiff-hostports". It is written only once a
	// pod asks for a host port, and replaced whole each time.
	HostPortTable string
}

// Manager sets up and tears down pod networks. It is safe for concurrent
// use; a restarted agent finds its namespaces and addresses again.
type Manager struct {
	cfg Config

	mu     sync.Mutex
	cidr   *net.IPNet
	gw     net.IP
	routes map[string]Route

	// hpMu serializes host-port changes; nft is the host-port table's
	// interface, made on first use (nft may be missing where no pod
	// asks for a host port).
	hpMu sync.Mutex
	nft  knftables.Interface
}

// Result is a pod's network.
type Result struct {
	// NetNSPath is the namespace for the pod's containers to join.
	NetNSPath string
	// IP is the pod's address; nil without a pod CIDR.
	IP net.IP
}

// Route sends a pod CIDR to a node (host-gw).
type Route struct {
	CIDR string
	Via  net.IP
}

// New prepares a Manager; it changes nothing until SetPodCIDR or Setup.
func New(cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("network: Config.StateDir is required")
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "skiff0"
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.HostPortTable == "" {
		cfg.HostPortTable = "skiff-hostports"
	}
	for _, d := range []string{"netns", "ips", "hostports"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("network state dir: %w", err)
		}
	}
	return &Manager{cfg: cfg, routes: map[string]Route{}}, nil
}

// PodCIDR is the CIDR set by SetPodCIDR, "" if none.
func (m *Manager) PodCIDR() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cidr == nil {
		return ""
	}
	return m.cidr.String()
}

// Bridge is the node bridge's name.
func (m *Manager) Bridge() string { return m.cfg.Bridge }

// Gateway is the bridge's address, the pods' gateway; nil until SetPodCIDR.
func (m *Manager) Gateway() net.IP {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gw
}

// SetPodCIDR configures the bridge for cidr: its first address is the
// bridge's, the pods' gateway. IP forwarding is turned on so pods reach
// other nodes.
func (m *Manager) SetPodCIDR(cidr string) error {
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("pod CIDR: %w", err)
	}
	if ip.To4() == nil {
		return fmt.Errorf("pod CIDR %s: only IPv4 is supported", cidr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cidr != nil && m.cidr.String() == ipnet.String() {
		return nil
	}
	gw := nthIP(ipnet, 1)
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		b := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: m.cfg.Bridge, MTU: m.cfg.MTU}}
		if err := netlink.LinkAdd(b); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create bridge %s: %w", m.cfg.Bridge, err)
		}
		if br, err = netlink.LinkByName(m.cfg.Bridge); err != nil {
			return fmt.Errorf("bridge %s: %w", m.cfg.Bridge, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw, Mask: ipnet.Mask}}
	if err := netlink.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("bridge address: %w", err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge up: %w", err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable ip forwarding: %w", err)
	}
	m.cidr, m.gw = ipnet, gw
	return nil
}

func (m *Manager) nsPath(id string) string { return filepath.Join(m.cfg.StateDir, "netns", id) }

// NetNSPath is where pod id's network namespace is (or will be) bound.
func (m *Manager) NetNSPath(id string) string { return m.nsPath(id) }

// Setup gives pod id its namespace and, with a pod CIDR, an address on the
// bridge. It is idempotent: a pod set up before keeps its address.
func (m *Manager) Setup(id string) (Result, error) {
	path := m.nsPath(id)
	if err := createNetNS(path); err != nil {
		return Result{}, err
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return Result{}, fmt.Errorf("open netns: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return Result{}, fmt.Errorf("netlink in pod netns: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return Result{}, fmt.Errorf("pod loopback: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return Result{}, fmt.Errorf("pod loopback up: %w", err)
	}
	m.mu.Lock()
	cidr, gw := m.cidr, m.gw
	m.mu.Unlock()
	if cidr == nil {
		return Result{NetNSPath: path}, nil
	}
	ip, err := m.allocate(id, cidr)
	if err != nil {
		return Result{}, err
	}
	if err := m.plugVeth(id, ns, h, ip, cidr, gw); err != nil {
		return Result{}, err
	}
	return Result{NetNSPath: path, IP: ip}, nil
}

// HostVeth is the host end's name for pod id, stable and at most 15 bytes.
func HostVeth(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "veth" + hex.EncodeToString(sum[:])[:11]
}

// plugVeth connects the pod's eth0 to the bridge, unless already done.
func (m *Manager) plugVeth(id string, ns netns.NsHandle, h *netlink.Handle, ip net.IP, cidr *net.IPNet, gw net.IP) error {
	if _, err := h.LinkByName("eth0"); err == nil {
		return nil // set up before (a restarted agent)
	}
	host := HostVeth(id)
	if old, err := netlink.LinkByName(host); err == nil {
		_ = netlink.LinkDel(old) // half-made by a crash
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: host, MTU: m.cfg.MTU},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth: %w", err)
	}
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	hl, err := netlink.LinkByName(host)
	if err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	if err := netlink.LinkSetMaster(hl, br); err != nil {
		return fmt.Errorf("veth to bridge: %w", err)
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		return fmt.Errorf("veth up: %w", err)
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("pod eth0: %w", err)
	}
	if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: cidr.Mask}}); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pod address: %w", err)
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("pod eth0 up: %w", err)
	}
	if err := h.RouteReplace(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("pod default route: %w", err)
	}
	return nil
}

// Teardown removes pod id's host ports, namespace (and with it eth0), its
// host veth and its address. Missing pieces are fine: it is called again
// after crashes.
func (m *Manager) Teardown(id string) error {
	var errs []error
	if err := m.removeHostPorts(id); err != nil {
		errs = append(errs, err)
	}
	if l, err := netlink.LinkByName(HostVeth(id)); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete veth: %w", err))
		}
	}
	if err := removeNetNS(m.nsPath(id)); err != nil {
		errs = append(errs, err)
	}
	if err := m.release(id); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Lookup returns pod id's network if it is set up.
func (m *Manager) Lookup(id string) (Result, bool) {
	path := m.nsPath(id)
	if !isNSMount(path) {
		return Result{}, false
	}
	return Result{NetNSPath: path, IP: m.allocated(id)}, true
}

// IDs lists the pods that have a namespace.
func (m *Manager) IDs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(m.cfg.StateDir, "netns"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

// SyncRoutes makes the node route each other node's pod CIDR through that
// node (host-gw) and removes routes it added before that are no longer
// wanted.
func (m *Manager) SyncRoutes(want []Route) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	next := map[string]Route{}
	for _, r := range want {
		_, dst, err := net.ParseCIDR(r.CIDR)
		if err != nil || (m.cidr != nil && dst.String() == m.cidr.String()) {
			continue
		}
		next[dst.String()] = r
		if old, ok := m.routes[dst.String()]; ok && old.Via.Equal(r.Via) {
			continue
		}
		if err := netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: r.Via}); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", dst, r.Via, err))
			delete(next, dst.String())
		}
	}
	for k, r := range m.routes {
		if _, ok := next[k]; !ok {
			_, dst, _ := net.ParseCIDR(k)
			_ = netlink.RouteDel(&netlink.Route{Dst: dst, Gw: r.Via})
		}
	}
	m.routes = next
	return errors.Join(errs...)
}
