package proxy

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkConntrack is Conntrack through the kernel's netlink interface.
type NetlinkConntrack struct{}

var _ Conntrack = NetlinkConntrack{}

// ClearUDP implements Conntrack.
func (NetlinkConntrack) ClearUDP(dst string, port int32, endpoint string) error {
	f := &netlink.ConntrackFilter{}
	if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
		return err
	}
	if dst != "" {
		if err := f.AddIP(netlink.ConntrackOrigDstIP, net.ParseIP(dst)); err != nil {
			return err
		}
	}
	if port != 0 {
		if err := f.AddPort(netlink.ConntrackOrigDstPort, uint16(port)); err != nil {
			return err
		}
	}
	if endpoint != "" {
		if err := f.AddIP(netlink.ConntrackReplySrcIP, net.ParseIP(endpoint)); err != nil {
			return err
		}
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
		return fmt.Errorf("conntrack delete: %w", err)
	}
	return nil
}
