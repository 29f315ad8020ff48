package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// SlicePlugin registers the EndpointSlice controller.
var SlicePlugin = framework.Plugin{Name: "endpointslice", EventSource: "endpoint-slice-controller", New: NewSlices}

// EndpointsPlugin registers the v1 Endpoints controller.
var EndpointsPlugin = framework.Plugin{Name: "endpoint", EventSource: "endpoint-controller", New: NewEndpoints}

// legacyManagedBy marks the Endpoints this controller writes, so that it never deletes
// Endpoints someone wrote by hand for a Service without a selector.
const legacyManagedBy = "endpoint-controller"

// base is what both controllers share: a queue of Service keys fed by Service and pod changes.
type base struct {
	client   kubernetes.Interface
	log      *slog.Logger
	workers  int
	queue    *framework.Queue
	services corelisters.ServiceLister
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	synced   []cache.InformerSynced
}

func newBase(d framework.Deps, name string) (*base, error) {
	svcInf, podInf, nodeInf := d.Informers.Core().V1().Services(), d.Informers.Core().V1().Pods(), d.Informers.Core().V1().Nodes()
	b := &base{
		client: d.Client, log: d.Logger, workers: d.Options.Workers,
		queue:    framework.NewQueue(name, d.Metrics, d.Logger),
		services: svcInf.Lister(), pods: podInf.Lister(), nodes: nodeInf.Lister(),
		synced: []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
	}
	if _, err := svcInf.Informer().AddEventHandler(b.queue.Handler()); err != nil {
		return nil, err
	}
	_, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { b.queuePodServices(o, nil) },
		UpdateFunc: func(old, cur any) {
			op, cp := old.(*corev1.Pod), cur.(*corev1.Pod)
			if op.ResourceVersion == cp.ResourceVersion {
				return // a resync: nothing changed
			}
			if labels.Equals(op.Labels, cp.Labels) {
				old = nil
			}
			b.queuePodServices(cur, old)
		},
		DeleteFunc: func(o any) { b.queuePodServices(o, nil) },
	})
	return b, err
}

// queuePodServices queues every Service whose selector picks the pod (now or before).
func (b *base) queuePodServices(obj, old any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	svcs, err := b.services.Services(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	var oldLabels labels.Set
	if op, ok := old.(*corev1.Pod); ok {
		oldLabels = op.Labels
	}
	for _, s := range svcs {
		if !Selects(s) {
			continue
		}
		sel := labels.SelectorFromValidatedSet(s.Spec.Selector)
		if sel.Matches(labels.Set(p.Labels)) || (oldLabels != nil && sel.Matches(oldLabels)) {
			b.queue.Add(s.Namespace + "/" + s.Name)
		}
	}
}

// selected lists the pods svc's selector picks.
func (b *base) selected(svc *corev1.Service) ([]*corev1.Pod, error) {
	return b.pods.Pods(svc.Namespace).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
}

func (b *base) zoneOf(node string) string {
	n, err := b.nodes.Get(node)
	if err != nil {
		return ""
	}
	return n.Labels[zoneLabel]
}

// SliceController keeps each selecting Service's EndpointSlices in step with its pods.
type SliceController struct {
	*base
	slices discoverylisters.EndpointSliceLister
}

// NewSlices wires the EndpointSlice controller.
func NewSlices(d framework.Deps) (framework.Controller, error) {
	b, err := newBase(d, "endpointslice")
	if err != nil {
		return nil, fmt.Errorf("endpointslice: %w", err)
	}
	inf := d.Informers.Discovery().V1().EndpointSlices()
	c := &SliceController{base: b, slices: inf.Lister()}
	c.synced = append(c.synced, inf.Informer().HasSynced)
	queueOwner := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if s, ok := o.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelManagedBy] == ManagedBy && s.Labels[serviceNameKey] != "" {
			c.queue.Add(s.Namespace + "/" + s.Labels[serviceNameKey])
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: queueOwner, UpdateFunc: func(_, o any) { queueOwner(o) }, DeleteFunc: queueOwner,
	}); err != nil {
		return nil, fmt.Errorf("endpointslice: %w", err)
	}
	return c, nil
}

// Run reconciles until ctx ends.
func (c *SliceController) Run(ctx context.Context) error {
	return c.queue.Run(ctx, c.workers, c, c.synced...)
}

// Reconcile brings one Service's slices to the desired set. Slice names are the Service's
// name and an index, so a create the informer has not shown yet fails as AlreadyExists and
// is retried, never duplicated.
func (c *SliceController) Reconcile(ctx context.Context, key string) (framework.Result, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return framework.Result{}, framework.Terminal(err)
	}
	sel := labels.SelectorFromSet(labels.Set{serviceNameKey: name, discoveryv1.LabelManagedBy: ManagedBy})
	existing, err := c.slices.EndpointSlices(ns).List(sel)
	if err != nil {
		return framework.Result{}, err
	}
	sort.Slice(existing, func(i, j int) bool { return existing[i].Name < existing[j].Name })
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return framework.Result{}, nil // the garbage collector removes the slices it owned
	}
	if err != nil {
		return framework.Result{}, err
	}
	var desired []*discoveryv1.EndpointSlice
	if Selects(svc) {
		pods, err := c.selected(svc)
		if err != nil {
			return framework.Result{}, err
		}
		desired = DesiredSlices(svc, pods, c.zoneOf)
	}
	api := c.client.DiscoveryV1().EndpointSlices(ns)
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	want := map[string]bool{}
	for i, d := range desired {
		d.Name, d.GenerateName = sliceName(name, i), ""
		want[d.Name] = true
		cur, ok := byName[d.Name]
		if !ok {
			if _, err := api.Create(ctx, d, metav1.CreateOptions{}); err != nil {
				return framework.Result{}, err
			}
			continue
		}
		if sameSlice(cur, d) {
			continue
		}
		d.ResourceVersion = cur.ResourceVersion
		if _, err := api.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			return framework.Result{}, err
		}
	}
	for _, s := range existing {
		if !want[s.Name] {
			if err := api.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}}); err != nil && !apierrors.IsNotFound(err) {
				return framework.Result{}, err
			}
		}
	}
	return framework.Result{}, nil
}

func sliceName(svc string, i int) string {
	suffix := "-" + strconv.Itoa(i)
	if len(svc)+len(suffix) > 253 {
		svc = svc[:253-len(suffix)]
	}
	return svc + suffix
}

func sameSlice(a, b *discoveryv1.EndpointSlice) bool {
	return a.AddressType == b.AddressType &&
		apiequality.Semantic.DeepEqual(a.Endpoints, b.Endpoints) &&
		apiequality.Semantic.DeepEqual(a.Ports, b.Ports) &&
		apiequality.Semantic.DeepEqual(a.Labels, b.Labels) &&
		apiequality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences)
}

// EndpointsController keeps the v1 Endpoints of each selecting Service.
type EndpointsController struct {
	*base
	endpoints corelisters.EndpointsLister
}

// NewEndpoints wires the Endpoints controller.
func NewEndpoints(d framework.Deps) (framework.Controller, error) {
	b, err := newBase(d, "endpoint")
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	inf := d.Informers.Core().V1().Endpoints()
	c := &EndpointsController{base: b, endpoints: inf.Lister()}
	c.synced = append(c.synced, inf.Informer().HasSynced)
	if _, err := inf.Informer().AddEventHandler(c.queue.Handler()); err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	return c, nil
}

// Run reconciles until ctx ends.
func (c *EndpointsController) Run(ctx context.Context) error {
	return c.queue.Run(ctx, c.workers, c, c.synced...)
}

// Reconcile writes one Service's Endpoints, or deletes the ones it wrote once the Service
// is gone or no longer selects.
func (c *EndpointsController) Reconcile(ctx context.Context, key string) (framework.Result, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return framework.Result{}, framework.Terminal(err)
	}
	cur, err := c.endpoints.Endpoints(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return framework.Result{}, err
	}
	if apierrors.IsNotFound(err) {
		cur = nil
	}
	api := c.client.CoreV1().Endpoints(ns)
	svc, err := c.services.Services(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return framework.Result{}, err
	}
	if svc == nil || !Selects(svc) {
		if cur != nil && cur.Labels[discoveryv1.LabelManagedBy] == legacyManagedBy {
			err := api.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
			if err != nil && !apierrors.IsNotFound(err) {
				return framework.Result{}, err
			}
		}
		return framework.Result{}, nil
	}
	pods, err := c.selected(svc)
	if err != nil {
		return framework.Result{}, err
	}
	want := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{}}, Subsets: DesiredSubsets(svc, pods)}
	for k, v := range svc.Labels {
		want.Labels[k] = v
	}
	want.Labels[discoveryv1.LabelManagedBy] = legacyManagedBy
	if cur == nil {
		_, err := api.Create(ctx, want, metav1.CreateOptions{})
		return framework.Result{}, err
	}
	if apiequality.Semantic.DeepEqual(cur.Subsets, want.Subsets) && apiequality.Semantic.DeepEqual(cur.Labels, want.Labels) {
		return framework.Result{}, nil
	}
	want.ResourceVersion, want.Annotations = cur.ResourceVersion, cur.Annotations
	_, err = api.Update(ctx, want, metav1.UpdateOptions{})
	return framework.Result{}, err
}
