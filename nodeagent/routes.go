package nodeagent

import (
	"context"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/nodeagent/network"
)

// routeSync is how often routes to other nodes' pod CIDRs are refreshed.
const routeSync = 10 * time.Second

// runRoutes keeps a host-gw route to every other node's pod CIDR through
// that node's InternalIP, so pods reach pods on other nodes.
func (a *Agent) runRoutes(ctx context.Context) error {
	if a.net == nil {
		return nil
	}
	t := time.NewTicker(routeSync)
	defer t.Stop()
	for {
		nodes, err := a.cfg.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil {
			if err := a.net.SyncRoutes(nodeRoutes(a.cfg.NodeName, nodes.Items)); err != nil {
				a.log.Warn("syncing pod routes", "err", err)
			}
		} else if ctx.Err() == nil {
			a.log.Warn("listing nodes for pod routes", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// nodeRoutes is the host-gw route table: each other node's pod CIDR via its
// InternalIP.
func nodeRoutes(self string, nodes []corev1.Node) []network.Route {
	var out []network.Route
	for _, n := range nodes {
		if n.Name == self || n.Spec.PodCIDR == "" {
			continue
		}
		for _, addr := range n.Status.Addresses {
			if addr.Type == corev1.NodeInternalIP {
				if ip := net.ParseIP(addr.Address); ip != nil {
					out = append(out, network.Route{CIDR: n.Spec.PodCIDR, Via: ip})
				}
				break
			}
		}
	}
	return out
}
