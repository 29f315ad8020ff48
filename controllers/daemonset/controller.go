package daemonset

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/expectations"
)

// Plugin registers the DaemonSet controller.
var Plugin = framework.Plugin{Name: "daemonset", EventSource: "daemonset-controller", New: New}

var controllerKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Controller reconciles DaemonSets.
type Controller struct {
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger
	workers  int

	dsLister   appslisters.DaemonSetLister
	crLister   appslisters.ControllerRevisionLister
	podLister  corelisters.PodLister
	nodeLister corelisters.NodeLister
	synced     []cache.InformerSynced
	queue      *framework.Queue
	expect     *expectations.Expectations

	// failedBackoff spaces out the replacement of a node's failed daemon pods (upstream
	// failedPodsBackoff: 1s doubling to 15m), so a node that rejects the pod is not hammered.
	failedMu      sync.Mutex
	failedBackoff *flowcontrol.Backoff
}

// New wires the controller to the DaemonSet, ControllerRevision, pod and node informers.
func New(d framework.Deps) (framework.Controller, error) {
	dsInf := d.Informers.Apps().V1().DaemonSets()
	crInf := d.Informers.Apps().V1().ControllerRevisions()
	podInf := d.Informers.Core().V1().Pods()
	nodeInf := d.Informers.Core().V1().Nodes()
	c := &Controller{
		client: d.Client, recorder: d.Recorder, log: d.Logger, workers: d.Options.Workers,
		dsLister: dsInf.Lister(), crLister: crInf.Lister(), podLister: podInf.Lister(), nodeLister: nodeInf.Lister(),
		synced: []cache.InformerSynced{dsInf.Informer().HasSynced, crInf.Informer().HasSynced,
			podInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
		queue:         framework.NewQueue("daemonset", d.Metrics, d.Logger),
		expect:        expectations.New(),
		failedBackoff: flowcontrol.NewBackOff(time.Second, 15*time.Minute),
	}
	if _, err := dsInf.Informer().AddEventHandler(c.queue.Handler()); err != nil {
		return nil, fmt.Errorf("daemonset: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("daemonset: %w", err)
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.enqueueAll() },
		UpdateFunc: func(old, cur any) {
			if nodeChangeMatters(old.(*corev1.Node), cur.(*corev1.Node)) {
				c.enqueueAll()
			}
		},
		DeleteFunc: func(any) { c.enqueueAll() },
	}); err != nil {
		return nil, fmt.Errorf("daemonset: %w", err)
	}
	return c, nil
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.queue.Run(ctx, c.workers, c, c.synced...)
}

// nodeChangeMatters: only what ShouldRun reads (labels, taints, name-pinning fields) can
// change which daemons a node runs; heartbeats cannot.
func nodeChangeMatters(old, cur *corev1.Node) bool {
	return !maps.Equal(old.Labels, cur.Labels) || !reflect.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		old.Spec.Unschedulable != cur.Spec.Unschedulable
}

func (c *Controller) enqueueAll() {
	sets, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range sets {
		c.queue.AddObject(ds)
	}
}

func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) string {
	if ref == nil || ref.Kind != controllerKind.Kind {
		return ""
	}
	ds, err := c.dsLister.DaemonSets(ns).Get(ref.Name)
	if err != nil || ds.UID != ref.UID {
		return ""
	}
	return ns + "/" + ds.Name
}

func (c *Controller) enqueueMatching(p *corev1.Pod) {
	sets, err := c.dsLister.DaemonSets(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range sets {
		sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.queue.AddObject(ds)
		}
	}
}

func (c *Controller) addPod(obj any) {
	p := obj.(*corev1.Pod)
	if p.DeletionTimestamp != nil {
		c.deletePod(p)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		if key := c.resolve(p.Namespace, ref); key != "" {
			c.expect.CreationObserved(key)
			c.queue.Add(key)
		}
		return
	}
	c.enqueueMatching(p)
}

func (c *Controller) updatePod(oldObj, obj any) {
	old, cur := oldObj.(*corev1.Pod), obj.(*corev1.Pod)
	if old.ResourceVersion == cur.ResourceVersion {
		return
	}
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		c.deletePod(cur)
		return
	}
	oldRef, curRef := metav1.GetControllerOfNoCopy(old), metav1.GetControllerOfNoCopy(cur)
	if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
		if key := c.resolve(old.Namespace, oldRef); key != "" {
			c.queue.Add(key)
		}
	}
	if curRef == nil {
		c.enqueueMatching(cur)
		return
	}
	key := c.resolve(cur.Namespace, curRef)
	if key == "" {
		return
	}
	c.queue.Add(key)
	if ds, err := c.dsLister.DaemonSets(cur.Namespace).Get(curRef.Name); err == nil && ds.Spec.MinReadySeconds > 0 {
		c.queue.AddAfter(key, time.Duration(ds.Spec.MinReadySeconds)*time.Second+time.Second)
	}
}

func (c *Controller) deletePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := c.resolve(p.Namespace, metav1.GetControllerOfNoCopy(p))
	if key == "" {
		return
	}
	c.expect.DeletionObserved(key, p.Namespace+"/"+p.Name)
	c.queue.Add(key)
}
