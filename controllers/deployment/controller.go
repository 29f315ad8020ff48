package deployment

import (
	"context"
	"fmt"
	"log/slog"

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
)

// Plugin registers the Deployment controller.
var Plugin = framework.Plugin{Name: "deployment", EventSource: "deployment-controller", New: New}

var controllerKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Controller reconciles Deployments.
type Controller struct {
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger
	workers  int

	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	queue     *framework.Queue
}

// New wires the controller to the Deployment, ReplicaSet and pod informers.
func New(d framework.Deps) (framework.Controller, error) {
	dInf := d.Informers.Apps().V1().Deployments()
	rsInf := d.Informers.Apps().V1().ReplicaSets()
	podInf := d.Informers.Core().V1().Pods()
	c := &Controller{
		client: d.Client, recorder: d.Recorder, log: d.Logger, workers: d.Options.Workers,
		dLister: dInf.Lister(), rsLister: rsInf.Lister(), podLister: podInf.Lister(),
		synced: []cache.InformerSynced{dInf.Informer().HasSynced, rsInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue:  framework.NewQueue("deployment", d.Metrics, d.Logger),
	}
	if _, err := dInf.Informer().AddEventHandler(c.queue.Handler()); err != nil {
		return nil, fmt.Errorf("deployment: %w", err)
	}
	if _, err := rsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onReplicaSet(nil, obj.(*appsv1.ReplicaSet)) },
		UpdateFunc: func(old, obj any) { c.onReplicaSet(old.(*appsv1.ReplicaSet), obj.(*appsv1.ReplicaSet)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if rs, ok := obj.(*appsv1.ReplicaSet); ok {
				c.enqueueOwner(rs.Namespace, metav1.GetControllerOfNoCopy(rs))
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("deployment: %w", err)
	}
	// Recreate waits for the old pods to be gone.
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			p, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			ref := metav1.GetControllerOfNoCopy(p)
			if ref == nil || ref.Kind != "ReplicaSet" {
				return
			}
			if rs, err := c.rsLister.ReplicaSets(p.Namespace).Get(ref.Name); err == nil && rs.UID == ref.UID {
				c.enqueueOwner(rs.Namespace, metav1.GetControllerOfNoCopy(rs))
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("deployment: %w", err)
	}
	return c, nil
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.queue.Run(ctx, c.workers, c, c.synced...)
}

func (c *Controller) enqueueOwner(ns string, ref *metav1.OwnerReference) {
	if ref == nil || ref.Kind != controllerKind.Kind {
		return
	}
	d, err := c.dLister.Deployments(ns).Get(ref.Name)
	if err != nil || d.UID != ref.UID {
		return
	}
	c.queue.AddObject(d)
}

func (c *Controller) onReplicaSet(old, rs *appsv1.ReplicaSet) {
	if old != nil && old.ResourceVersion == rs.ResourceVersion {
		return
	}
	cur := metav1.GetControllerOfNoCopy(rs)
	if old != nil {
		if o := metav1.GetControllerOfNoCopy(old); o != nil && (cur == nil || o.UID != cur.UID) {
			c.enqueueOwner(old.Namespace, o)
		}
	}
	if cur != nil {
		c.enqueueOwner(rs.Namespace, cur)
		return
	}
	// An orphan: every Deployment that selects it may adopt it.
	ds, err := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(rs.Labels)) {
			c.queue.AddObject(d)
		}
	}
}
