package replicaset

import (
	"context"
	"fmt"
	"log/slog"
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

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/expectations"
	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

// Plugin registers the ReplicaSet controller.
var Plugin = framework.Plugin{Name: "replicaset", EventSource: "replicaset-controller", New: New}

var controllerKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Controller reconciles ReplicaSets.
type Controller struct {
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger
	workers  int

	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	pods      cache.SharedIndexInformer // with podutil.ControllerIndex
	synced    []cache.InformerSynced
	queue     *framework.Queue
	expect    *expectations.Expectations
}

// New wires the controller to the ReplicaSet and pod informers.
func New(d framework.Deps) (framework.Controller, error) {
	rsInf := d.Informers.Apps().V1().ReplicaSets()
	podInf := d.Informers.Core().V1().Pods()
	c := &Controller{
		client: d.Client, recorder: d.Recorder, log: d.Logger, workers: d.Options.Workers,
		rsLister: rsInf.Lister(), podLister: podInf.Lister(), pods: podInf.Informer(),
		synced: []cache.InformerSynced{rsInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue:  framework.NewQueue("replicaset", d.Metrics, d.Logger),
		expect: expectations.New(),
	}
	if err := podutil.AddControllerIndex(podInf.Informer()); err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	if _, err := rsInf.Informer().AddEventHandler(c.queue.Handler()); err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	return c, nil
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.queue.Run(ctx, c.workers, c, c.synced...)
}

// resolve returns the key of the ReplicaSet a controller reference names, if it still
// exists with that UID.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) (string, *appsv1.ReplicaSet) {
	if ref == nil || ref.Kind != controllerKind.Kind {
		return "", nil
	}
	rs, err := c.rsLister.ReplicaSets(ns).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return "", nil
	}
	return ns + "/" + rs.Name, rs
}

// enqueueMatching queues every ReplicaSet whose selector matches an orphan pod: one of them
// may adopt it.
func (c *Controller) enqueueMatching(p *corev1.Pod) {
	sets, err := c.rsLister.ReplicaSets(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, rs := range sets {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.queue.AddObject(rs)
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
		if key, _ := c.resolve(p.Namespace, ref); key != "" {
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
		return // a resync
	}
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		// A graceful deletion starts: the pod no longer counts, so the replacement can be
		// created now rather than when the kubelet is done.
		c.deletePod(cur)
		return
	}
	oldRef, curRef := metav1.GetControllerOfNoCopy(old), metav1.GetControllerOfNoCopy(cur)
	if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
		if key, _ := c.resolve(old.Namespace, oldRef); key != "" {
			c.queue.Add(key)
		}
	}
	if curRef != nil {
		key, rs := c.resolve(cur.Namespace, curRef)
		if key == "" {
			return
		}
		c.queue.Add(key)
		// A pod that just became ready becomes available minReadySeconds later: look again then.
		if rs.Spec.MinReadySeconds > 0 && !isReady(old) && isReady(cur) {
			c.queue.AddAfter(key, time.Duration(rs.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	c.enqueueMatching(cur)
}

func (c *Controller) deletePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key, _ := c.resolve(p.Namespace, metav1.GetControllerOfNoCopy(p))
	if key == "" {
		return
	}
	c.expect.DeletionObserved(key, p.Namespace+"/"+p.Name)
	c.queue.Add(key)
}
