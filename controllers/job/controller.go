package job

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/expectations"
)

// Plugin registers the Job controller.
var Plugin = framework.Plugin{Name: "job", EventSource: "job-controller", New: New}

var controllerKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller reconciles Jobs.
type Controller struct {
	client      kubernetes.Interface
	recorder    record.EventRecorder
	log         *slog.Logger
	workers     int
	backoffBase time.Duration

	jobLister batchlisters.JobLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	queue     *framework.Queue
	expect    *expectations.Expectations

	// finalizerRemoved holds pods whose tracking finalizer this term removed and whose
	// update the cache has not shown yet: a stale cache must not count them twice
	// (upstream's finalizerExpectations).
	mu               sync.Mutex
	finalizerRemoved map[types.UID]bool
}

// New wires the controller to the Job and pod informers.
func New(d framework.Deps) (framework.Controller, error) {
	jobInf := d.Informers.Batch().V1().Jobs()
	podInf := d.Informers.Core().V1().Pods()
	c := &Controller{
		client: d.Client, recorder: d.Recorder, log: d.Logger, workers: d.Options.Workers,
		backoffBase: d.Options.Defaulted().JobPodFailureBackoff,
		jobLister:   jobInf.Lister(), podLister: podInf.Lister(),
		synced:           []cache.InformerSynced{jobInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue:            framework.NewQueue("job", d.Metrics, d.Logger),
		expect:           expectations.New(),
		finalizerRemoved: map[types.UID]bool{},
	}
	if _, err := jobInf.Informer().AddEventHandler(c.queue.Handler()); err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.onPod(nil, obj.(*corev1.Pod), false) },
		UpdateFunc: func(old, obj any) {
			o, p := old.(*corev1.Pod), obj.(*corev1.Pod)
			if o.ResourceVersion != p.ResourceVersion {
				c.onPod(o, p, false)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				c.onPod(nil, p, true)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	return c, nil
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.queue.Run(ctx, c.workers, c, c.synced...)
}

func hasTrackingFinalizer(p *corev1.Pod) bool {
	return slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer)
}

// onPod queues the Job a pod belongs to, by name even when that Job is gone: its sync then
// releases the pod's tracking finalizer.
func (c *Controller) onPod(old, p *corev1.Pod, deleted bool) {
	if deleted || !hasTrackingFinalizer(p) {
		c.mu.Lock()
		delete(c.finalizerRemoved, p.UID)
		c.mu.Unlock()
	}
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil && old != nil {
		ref = metav1.GetControllerOfNoCopy(old)
	}
	if ref == nil {
		if deleted || p.DeletionTimestamp != nil {
			return
		}
		jobs, err := c.jobLister.Jobs(p.Namespace).List(labels.Everything())
		if err != nil {
			return
		}
		for _, j := range jobs {
			if sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
				c.queue.AddObject(j)
			}
		}
		return
	}
	if ref.Kind != controllerKind.Kind {
		return
	}
	key := p.Namespace + "/" + ref.Name
	switch {
	case deleted:
		c.expect.DeletionObserved(key, p.Namespace+"/"+p.Name)
	case old == nil && p.DeletionTimestamp == nil:
		c.expect.CreationObserved(key)
	case p.DeletionTimestamp != nil && (old == nil || old.DeletionTimestamp == nil):
		c.expect.DeletionObserved(key, p.Namespace+"/"+p.Name)
	}
	c.queue.Add(key)
}
