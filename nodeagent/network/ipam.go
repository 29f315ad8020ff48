package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Addresses are allocated host-local style: one file per address, created
// with O_EXCL, holding the pod's id. The file system is the lock, and a
// restarted agent finds every allocation again.

func (m *Manager) ipFile(ip net.IP) string {
	return filepath.Join(m.cfg.StateDir, "ips", ip.String())
}

// allocate returns the address already held by id, or the next free one after
// the last handed out (skipping the network, gateway and broadcast addresses),
// as host-local IPAM's round robin: an address just released is the last to be
// reused, because the other pods of the node still have its old owner's MAC in
// their neighbour caches for a while, and their replies to a new pod with that
// address would go to the old veth (seen as a Service backend on the same node
// that never answered a client started just after another).
func (m *Manager) allocate(id string, cidr *net.IPNet) (net.IP, error) {
	if ip := m.allocated(id); ip != nil && cidr.Contains(ip) {
		return ip, nil
	}
	ones, bits := cidr.Mask.Size()
	size := uint32(1) << (bits - ones)
	if size < 4 {
		return nil, fmt.Errorf("pod CIDR %s is too small", cidr)
	}
	usable := size - 3 // offsets 2 .. size-2
	last := int64(-1)  // the index (offset - 2) handed out last; -1: none, start at the first
	if o := m.lastOffset(cidr); o >= 2 {
		last = int64(o - 2)
	}
	for n := int64(1); n <= int64(usable); n++ {
		ip := nthIP(cidr, 2+uint32((last+n)%int64(usable)))
		f, err := os.OpenFile(m.ipFile(ip), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("allocate address: %w", err)
		}
		_, werr := f.WriteString(id)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(f.Name())
			return nil, fmt.Errorf("allocate address: %w", werr)
		}
		// Best effort: a lost record only makes the next search start earlier.
		_ = os.WriteFile(m.lastFile(), []byte(ip.String()), 0o600)
		return ip, nil
	}
	return nil, fmt.Errorf("pod CIDR %s is exhausted", cidr)
}

func (m *Manager) lastFile() string { return filepath.Join(m.cfg.StateDir, "last-reserved-ip") }

// lastOffset is the offset in cidr of the address allocate last handed out,
// recorded on disk so that a restarted agent goes on where it left off; 0 when
// there is none in cidr.
func (m *Manager) lastOffset(cidr *net.IPNet) uint32 {
	data, err := os.ReadFile(m.lastFile())
	if err != nil {
		return 0
	}
	ip := net.ParseIP(strings.TrimSpace(string(data))).To4()
	if ip == nil || !cidr.Contains(ip) {
		return 0
	}
	return binary.BigEndian.Uint32(ip) - binary.BigEndian.Uint32(cidr.IP.To4())
}

// allocated finds the address held by id.
func (m *Manager) allocated(id string) net.IP {
	entries, err := os.ReadDir(filepath.Join(m.cfg.StateDir, "ips"))
	if err != nil {
		return nil
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(m.cfg.StateDir, "ips", e.Name()))
		if err == nil && strings.TrimSpace(string(data)) == id {
			return net.ParseIP(e.Name())
		}
	}
	return nil
}

func (m *Manager) release(id string) error {
	for {
		ip := m.allocated(id)
		if ip == nil {
			return nil
		}
		if err := os.Remove(m.ipFile(ip)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("release %s: %w", ip, err)
		}
	}
}

// nthIP is the n-th address of an IPv4 network.
func nthIP(n *net.IPNet, i uint32) net.IP {
	base := binary.BigEndian.Uint32(n.IP.To4())
	out := make(net.IP, 4)
	binary.BigEndian.PutUint32(out, base+i)
	return out
}
