package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

// Plugin registers the node lifecycle controller (with its taint-based eviction).
var Plugin = framework.Plugin{Name: "nodelifecycle", EventSource: "node-controller", New: New}

// probe is what was last seen of a node's heartbeats, and when (by this server's clock: a
// node's clock is not trusted, as upstream's probeTimestamp).
type probe struct {
	renew, heartbeat time.Time
	seen             time.Time
}

// Controller watches node health.
type Controller struct {
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger
	opts     framework.Options

	nodes  corelisters.NodeLister
	leases coordlisters.LeaseLister
	pods   cache.SharedIndexInformer
	synced []cache.InformerSynced
	queue  *framework.Queue

	mu     sync.Mutex
	probes map[string]*probe
}

// New wires the controller to the node, lease and pod informers.
func New(d framework.Deps) (framework.Controller, error) {
	nodeInf := d.Informers.Core().V1().Nodes()
	leaseInf := d.Informers.Coordination().V1().Leases()
	podInf := d.Informers.Core().V1().Pods().Informer()
	if err := podutil.AddNodeNameIndex(podInf); err != nil {
		return nil, fmt.Errorf("nodelifecycle: %w", err)
	}
	c := &Controller{
		client: d.Client, recorder: d.Recorder, log: d.Logger, opts: d.Options,
		nodes: nodeInf.Lister(), leases: leaseInf.Lister(), pods: podInf,
		synced: []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, podInf.HasSynced},
		queue:  framework.NewQueue("nodelifecycle", d.Metrics, d.Logger),
		probes: map[string]*probe{},
	}
	if _, err := nodeInf.Informer().AddEventHandler(c.queue.Handler()); err != nil {
		return nil, fmt.Errorf("nodelifecycle: %w", err)
	}
	// A pod landing on a tainted node may have to be evicted.
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
				c.queue.Add(p.Spec.NodeName)
			}
		},
		UpdateFunc: func(old, obj any) {
			o, n := old.(*corev1.Pod), obj.(*corev1.Pod)
			if o.Spec.NodeName != n.Spec.NodeName && n.Spec.NodeName != "" {
				c.queue.Add(n.Spec.NodeName)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("nodelifecycle: %w", err)
	}
	return c, nil
}

// Run checks every node each monitor period, and on every change, until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(c.opts.NodeMonitorPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				nodes, _ := c.nodes.List(labels.Everything())
				for _, n := range nodes {
					c.queue.Add(n.Name)
				}
			}
		}
	}()
	err := c.queue.Run(ctx, c.opts.Workers, c, c.synced...)
	wg.Wait()
	return err
}

// lastProbe records the node's latest heartbeats and returns when one last changed.
func (c *Controller) lastProbe(node *corev1.Node, now time.Time) time.Time {
	var renew, heartbeat time.Time
	if l, err := c.leases.Leases(corev1.NamespaceNodeLease).Get(node.Name); err == nil && l.Spec.RenewTime != nil {
		renew = l.Spec.RenewTime.Time
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			heartbeat = cond.LastHeartbeatTime.Time
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.probes[node.Name]
	if !ok {
		// First sight (or a new leader): the node gets a whole grace period.
		p = &probe{renew: renew, heartbeat: heartbeat, seen: now}
		c.probes[node.Name] = p
	}
	if !renew.Equal(p.renew) || !heartbeat.Equal(p.heartbeat) {
		p.renew, p.heartbeat, p.seen = renew, heartbeat, now
	}
	return p.seen
}

// Reconcile checks one node: health, taints, pod readiness, evictions.
func (c *Controller) Reconcile(ctx context.Context, name string) (framework.Result, error) {
	cached, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.probes, name)
		c.mu.Unlock()
		return framework.Result{}, nil
	}
	if err != nil {
		return framework.Result{}, err
	}
	now := time.Now()
	node := cached.DeepCopy()
	if now.Sub(c.lastProbe(node, now)) > c.opts.NodeMonitorGracePeriod {
		if conds, changed := MarkUnknown(node.Status.Conditions, now); changed {
			node.Status.Conditions = conds
			out, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
			if err != nil {
				return framework.Result{}, fmt.Errorf("mark node %s unknown: %w", name, err)
			}
			c.recorder.Eventf(out, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", name)
			node = out.DeepCopy()
		}
	}
	if taints, changed := ReconcileTaints(node.Spec.Taints, WantedTaints(node), now); changed {
		node.Spec.Taints = taints
		out, err := c.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		if err != nil {
			return framework.Result{}, fmt.Errorf("taint node %s: %w", name, err)
		}
		node = out
	}
	pods := podutil.PodsOnNode(c.pods, name)
	if readyStatus(node) != corev1.ConditionTrue {
		if err := c.markPodsNotReady(ctx, pods, now); err != nil {
			return framework.Result{}, err
		}
	}
	return c.evict(ctx, node, pods, now)
}

func (c *Controller) markPodsNotReady(ctx context.Context, pods []*corev1.Pod, now time.Time) error {
	for _, p := range pods {
		if !podutil.IsActive(p) || !podutil.IsReady(p) {
			continue
		}
		cp := p.DeepCopy()
		for i := range cp.Status.Conditions {
			if cp.Status.Conditions[i].Type == corev1.PodReady {
				cp.Status.Conditions[i].Status = corev1.ConditionFalse
				cp.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now)
			}
		}
		_, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("mark pod %s/%s not ready: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}

// evict deletes the pods whose toleration of the node's NoExecute taints has run out, and
// asks to be called again when the next one does.
func (c *Controller) evict(ctx context.Context, node *corev1.Node, pods []*corev1.Pod, now time.Time) (framework.Result, error) {
	var next time.Duration
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		at, ok := EvictAt(p, node.Spec.Taints, c.opts.DefaultTolerationSeconds, now)
		if !ok {
			continue
		}
		if wait := at.Sub(now); wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		c.recorder.Eventf(p, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", p.Namespace, p.Name)
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return framework.Result{}, fmt.Errorf("evict %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return framework.Result{RequeueAfter: next}, nil
}
