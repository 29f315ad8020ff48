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

// allocate returns the address already held by id, or the first free one
// (skipping the network, gateway and broadcast addresses).
func (m *Manager) allocate(id string, cidr *net.IPNet) (net.IP, error) {
	if ip := m.allocated(id); ip != nil && cidr.Contains(ip) {
		return ip, nil
	}
	ones, bits := cidr.Mask.Size()
	size := uint32(1) << (bits - ones)
	for i := uint32(2); i+1 < size; i++ {
		ip := nthIP(cidr, i)
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
		return ip, nil
	}
	return nil, fmt.Errorf("pod CIDR %s is exhausted", cidr)
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
