package nodeagent

import (
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/nodeagent/network"
	"github.com/skiff-dev/skiff/nodeagent/proxy"
)

// podHostPorts lists the pod's container ports that ask for a port of the
// node, as the kubelet hands them to the CNI portmap plugin: its app
// containers' ports with a hostPort, IPv4 host addresses only.
func podHostPorts(pod *corev1.Pod) []network.HostPort {
	var out []network.HostPort
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			if p.HostIP != "" && net.ParseIP(p.HostIP).To4() == nil {
				continue // skiff's pod network is IPv4 only
			}
			proto := string(p.Protocol)
			if proto == "" {
				proto = string(corev1.ProtocolTCP)
			}
			out = append(out, network.HostPort{
				Protocol: strings.ToLower(proto), HostIP: p.HostIP,
				HostPort: p.HostPort, ContainerPort: p.ContainerPort,
			})
		}
	}
	return out
}

// setHostPorts maps the pod's host ports to its address. A hostNetwork
// pod's ports are the node's already.
func (a *Agent) setHostPorts(pod *corev1.Pod, sb *sandbox) error {
	if a.net == nil || pod.Spec.HostNetwork || sb.ip == "" {
		return nil
	}
	added, err := a.net.SetHostPorts(string(pod.UID), net.ParseIP(sb.ip), podHostPorts(pod))
	if err != nil {
		return err
	}
	for _, p := range added {
		if p.Protocol != "udp" {
			continue
		}
		// As portmap: datagrams sent to the port before it was mapped left
		// conntrack entries without the DNAT, which would outlive the
		// mapping for as long as the client keeps sending.
		if err := (proxy.NetlinkConntrack{}).ClearUDP("", p.HostPort, ""); err != nil {
			a.log.Warn("clearing UDP conntrack entries of a new host port", "port", p.HostPort, "err", err)
		}
	}
	return nil
}
