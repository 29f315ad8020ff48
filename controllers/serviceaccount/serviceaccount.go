// Package serviceaccount gives every namespace what in-cluster API clients need: the
// `default` ServiceAccount (kube-controller-manager's serviceaccount controller) and the
// kube-root-ca.crt ConfigMap holding the cluster CA (its root-ca-cert-publisher), which pods'
// projected service account volumes mount as ca.crt.
package serviceaccount

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/trim"
)

// Plugin registers the default ServiceAccount controller.
var Plugin = framework.Plugin{Name: "serviceaccount", EventSource: "service-account-controller", New: New}

// RootCAPlugin registers the kube-root-ca.crt publisher.
var RootCAPlugin = framework.Plugin{Name: "root-ca-cert-publisher", EventSource: "root-ca-cert-publisher", New: NewRootCA}

// RootCAConfigMap is the ConfigMap's name, and CAKey its key, as in Kubernetes.
const (
	RootCAConfigMap = "kube-root-ca.crt"
	CAKey           = "ca.crt"
)

// namespaced is a per-namespace reconcile loop fed by namespace changes and by changes to
// the object it keeps in each namespace.
type namespaced struct {
	client  kubernetes.Interface
	workers int
	queue   *framework.Queue
	nss     corelisters.NamespaceLister
	synced  []cache.InformerSynced
	ensure  func(ctx context.Context, ns string) error
	own     cache.SharedIndexInformer // an informer outside the shared factory, run by Run
}

func newNamespaced(d framework.Deps, name string, owned cache.SharedIndexInformer) (*namespaced, error) {
	nsInf := d.Informers.Core().V1().Namespaces()
	c := &namespaced{client: d.Client, workers: d.Options.Workers, queue: framework.NewQueue(name, d.Metrics, d.Logger),
		nss: nsInf.Lister(), synced: []cache.InformerSynced{nsInf.Informer().HasSynced, owned.HasSynced}}
	if _, err := nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.queue.AddObject, UpdateFunc: func(_, o any) { c.queue.AddObject(o) },
	}); err != nil {
		return nil, err
	}
	// A deleted or changed object is put back: queue its namespace.
	byNamespace := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if m, ok := o.(metav1.Object); ok {
			c.queue.Add(m.GetNamespace())
		}
	}
	if _, err := owned.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { byNamespace(o) }, DeleteFunc: byNamespace,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *namespaced) Run(ctx context.Context) error {
	if c.own != nil {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { c.own.Run(ctx.Done()) })
		defer wg.Wait()
		defer cancel()
	}
	return c.queue.Run(ctx, c.workers, framework.ReconcileFunc(c.reconcile), c.synced...)
}

func (c *namespaced) reconcile(ctx context.Context, key string) (framework.Result, error) {
	ns, err := c.nss.Get(key)
	if apierrors.IsNotFound(err) {
		return framework.Result{}, nil
	}
	if err != nil {
		return framework.Result{}, err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		return framework.Result{}, nil // nothing new goes into a namespace being deleted
	}
	err = c.ensure(ctx, key)
	if apierrors.IsForbidden(err) || apierrors.IsAlreadyExists(err) {
		return framework.Result{}, nil // terminating meanwhile, or made meanwhile
	}
	return framework.Result{}, err
}

// New wires the default ServiceAccount controller.
func New(d framework.Deps) (framework.Controller, error) {
	inf := d.Informers.Core().V1().ServiceAccounts()
	c, err := newNamespaced(d, "serviceaccount", inf.Informer())
	if err != nil {
		return nil, fmt.Errorf("serviceaccount: %w", err)
	}
	lister := inf.Lister()
	c.ensure = func(ctx context.Context, ns string) error {
		if _, err := lister.ServiceAccounts(ns).Get("default"); err == nil {
			return nil
		}
		_, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		return err
	}
	return c, nil
}

// NewRootCA wires the kube-root-ca.crt publisher.
func NewRootCA(d framework.Deps) (framework.Controller, error) {
	if len(d.Options.RootCA) == 0 {
		d.Logger.Warn("root-ca-cert-publisher: no root CA configured; publishing nothing")
		return idle{}, nil
	}
	// Only the kube-root-ca.crt ConfigMaps (a field selector), in an informer of its own:
	// kube-controller-manager's publisher watches every ConfigMap, which held each one of
	// the cluster decoded on the leader (up to 1 MiB each) for the one per namespace it keeps.
	inf := coreinformers.NewFilteredConfigMapInformer(d.Client, metav1.NamespaceAll, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", RootCAConfigMap).String()
		})
	if err := inf.SetTransform(trim.ManagedFields); err != nil {
		return nil, fmt.Errorf("root-ca-cert-publisher: %w", err)
	}
	c, err := newNamespaced(d, "root-ca-cert-publisher", inf)
	if err != nil {
		return nil, fmt.Errorf("root-ca-cert-publisher: %w", err)
	}
	c.own = inf
	lister, ca := corelisters.NewConfigMapLister(inf.GetIndexer()), string(d.Options.RootCA)
	c.ensure = func(ctx context.Context, ns string) error {
		cms := c.client.CoreV1().ConfigMaps(ns)
		cur, err := lister.ConfigMaps(ns).Get(RootCAConfigMap)
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: RootCAConfigMap}, Data: map[string]string{CAKey: ca}}, metav1.CreateOptions{})
			return err
		}
		if err != nil || (cur.Data[CAKey] == ca && len(cur.Data) == 1) {
			return err
		}
		upd := cur.DeepCopy()
		upd.Data = map[string]string{CAKey: ca}
		_, err = cms.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	}
	return c, nil
}

// idle is a controller with nothing to do.
type idle struct{}

func (idle) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
