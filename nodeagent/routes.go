package nodeagent

import (
	"context"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/nodeagent/network"
)

// routeSync is how often routes to other nodes' pod CIDRs are refreshed.
const routeSync = 10 * time.Second

// runRoutes follows every Node, as the kubelet's node informer does: this node's own
// object (the pod CIDR node IPAM gives it after registration) goes to the pod manager at
// once, and a host-gw route to every other node's pod CIDR through that node's InternalIP
// is kept, so pods reach pods on other nodes. Routes are resynced on every node change and
// every routeSync.
func (a *Agent) runRoutes(ctx context.Context) error {
	if a.net == nil {
		return nil // a hollow node has no pod network
	}
	nodes := a.cfg.Client.CoreV1().Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return nodes.List(ctx, o) },
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return nodes.Watch(ctx, o)
		},
	}
	changed := make(chan struct{}, 1)
	poke := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok && n.Name == a.cfg.NodeName {
			a.pods.setNode(n)
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	store, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw, ObjectType: &corev1.Node{},
		Handler: cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke},
	})
	go ctrl.RunWithContext(ctx)
	t := time.NewTicker(routeSync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-t.C:
		}
		if !ctrl.HasSynced() {
			continue
		}
		var list []corev1.Node
		for _, o := range store.List() {
			list = append(list, *o.(*corev1.Node))
		}
		if err := a.net.SyncRoutes(nodeRoutes(a.cfg.NodeName, list)); err != nil {
			a.log.Warn("syncing pod routes", "err", err)
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
