// Package nodeipam gives each node a spec.podCIDR (and spec.podCIDRs) carved from the
// cluster CIDR, as kube-controller-manager's range allocator does with
// --allocate-node-cidrs; the agents' pod networking uses it.
package nodeipam

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// Plugin registers node IPAM.
var Plugin = framework.Plugin{Name: "nodeipam", EventSource: "cidrAllocator", New: New}

// ErrExhausted: every node-sized block of the cluster CIDR is taken.
var ErrExhausted = fmt.Errorf("cluster CIDR is exhausted")

// NextCIDR returns the lowest block of size /mask in cluster that is not in used.
func NextCIDR(cluster *net.IPNet, mask int, used map[string]bool) (string, error) {
	ones, bits := cluster.Mask.Size()
	if mask < ones || mask > bits {
		return "", fmt.Errorf("node mask /%d does not fit in %s", mask, cluster)
	}
	base := new(big.Int).SetBytes(cluster.IP.To16())
	if bits == 32 {
		base = new(big.Int).SetBytes(cluster.IP.To4())
	}
	step := new(big.Int).Lsh(big.NewInt(1), uint(bits-mask))
	count := new(big.Int).Lsh(big.NewInt(1), uint(mask-ones))
	for i := big.NewInt(0); i.Cmp(count) < 0; i.Add(i, big.NewInt(1)) {
		addr := new(big.Int).Add(base, new(big.Int).Mul(i, step))
		b := addr.FillBytes(make([]byte, bits/8))
		cidr := (&net.IPNet{IP: net.IP(b), Mask: net.CIDRMask(mask, bits)}).String()
		if !used[cidr] {
			return cidr, nil
		}
	}
	return "", ErrExhausted
}

// Controller allocates node CIDRs.
type Controller struct {
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger
	cluster  *net.IPNet
	mask     int
	nodes    corelisters.NodeLister
	synced   cache.InformerSynced
	queue    *framework.Queue
	pending  map[string]string // node -> CIDR patched but not yet seen in the cache
}

// New wires node IPAM to the node informer.
func New(d framework.Deps) (framework.Controller, error) {
	_, cluster, err := net.ParseCIDR(d.Options.ClusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("nodeipam: %w", err)
	}
	inf := d.Informers.Core().V1().Nodes()
	c := &Controller{client: d.Client, recorder: d.Recorder, log: d.Logger, cluster: cluster, mask: d.Options.NodeCIDRMaskSize,
		nodes: inf.Lister(), synced: inf.Informer().HasSynced, queue: framework.NewQueue("nodeipam", d.Metrics, d.Logger),
		pending: map[string]string{}}
	if _, err := inf.Informer().AddEventHandler(c.queue.Handler()); err != nil {
		return nil, fmt.Errorf("nodeipam: %w", err)
	}
	return c, nil
}

// Run allocates with one worker (allocation must see every earlier one) until ctx ends.
func (c *Controller) Run(ctx context.Context) error { return c.queue.Run(ctx, 1, c, c.synced) }

// Reconcile gives the node a CIDR if it has none.
func (c *Controller) Reconcile(ctx context.Context, name string) (framework.Result, error) {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		delete(c.pending, name)
		return framework.Result{}, nil
	}
	if err != nil {
		return framework.Result{}, err
	}
	if node.Spec.PodCIDR != "" {
		delete(c.pending, name)
		return framework.Result{}, nil
	}
	used := map[string]bool{}
	all, _ := c.nodes.List(labels.Everything())
	for _, n := range all {
		for _, cidr := range append([]string{n.Spec.PodCIDR}, n.Spec.PodCIDRs...) {
			if _, ipnet, err := net.ParseCIDR(cidr); err == nil {
				used[ipnet.String()] = true
			}
		}
	}
	for n, cidr := range c.pending {
		if n != name {
			used[cidr] = true
		}
	}
	cidr, ok := c.pending[name]
	if !ok {
		if cidr, err = NextCIDR(c.cluster, c.mask, used); err != nil {
			c.recorder.Eventf(node, corev1.EventTypeWarning, "CIDRNotAvailable", "Node %s status is now: CIDRNotAvailable", name)
			return framework.Result{}, framework.Terminal(err)
		}
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}}})
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return framework.Result{}, fmt.Errorf("assign %s to node %s: %w", cidr, name, err)
	}
	c.pending[name] = cidr
	c.log.Info("assigned pod CIDR", "node", name, "cidr", cidr)
	return framework.Result{}, nil
}
