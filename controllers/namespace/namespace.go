// Package namespace is the namespace controller: a namespace being deleted has every object
// in it deleted, and once none is left its "kubernetes" finalizer is removed through
// /finalize, which lets the apiserver remove the namespace.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/discover"
)

// Plugin registers the namespace controller.
var Plugin = framework.Plugin{Name: "namespace", EventSource: "namespace-controller", New: New}

// recheck is how often a namespace still holding objects (pods terminating) is looked at.
const recheck = 2 * time.Second

// Controller empties deleted namespaces.
type Controller struct {
	client  kubernetes.Interface
	meta    metadata.Interface // lists what is left as metadata only, as upstream's deleter
	log     *slog.Logger
	workers int
	lister  corelisters.NamespaceLister
	synced  cache.InformerSynced
	queue   *framework.Queue
}

// New wires the controller to the namespace informer.
func New(d framework.Deps) (framework.Controller, error) {
	if d.Metadata == nil {
		return nil, errors.New("namespace: needs a metadata client")
	}
	inf := d.Informers.Core().V1().Namespaces()
	c := &Controller{client: d.Client, meta: d.Metadata, log: d.Logger, workers: d.Options.Workers,
		lister: inf.Lister(), synced: inf.Informer().HasSynced, queue: framework.NewQueue("namespace", d.Metrics, d.Logger)}
	if _, err := inf.Informer().AddEventHandler(c.queue.Handler()); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	return c, nil
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.queue.Run(ctx, c.workers, c, c.synced)
}

// Reconcile empties and finalizes one namespace being deleted.
func (c *Controller) Reconcile(ctx context.Context, name string) (framework.Result, error) {
	ns, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return framework.Result{}, nil
	}
	if err != nil {
		return framework.Result{}, err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return framework.Result{}, nil
	}
	res, err := discover.Resources(c.client.Discovery())
	if err != nil {
		return framework.Result{}, err
	}
	remaining := 0
	for _, r := range res {
		if !r.Namespaced || !r.Has("list") || !r.Has("delete") {
			continue
		}
		ri := c.meta.Resource(r.GVR).Namespace(name)
		list, err := ri.List(ctx, metav1.ListOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
				continue
			}
			return framework.Result{}, fmt.Errorf("list %s in %s: %w", r.GVR.Resource, name, err)
		}
		policy := metav1.DeletePropagationBackground
		for _, item := range list.Items {
			remaining++
			if item.GetDeletionTimestamp() != nil {
				continue
			}
			err := ri.Delete(ctx, item.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
			if err != nil && !apierrors.IsNotFound(err) {
				return framework.Result{}, fmt.Errorf("delete %s %s/%s: %w", r.GVR.Resource, name, item.GetName(), err)
			}
		}
	}
	if remaining > 0 {
		return framework.Result{RequeueAfter: recheck}, nil
	}
	cp := ns.DeepCopy()
	cp.Spec.Finalizers = slices.DeleteFunc(cp.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	if _, err := c.client.CoreV1().Namespaces().Finalize(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return framework.Result{}, fmt.Errorf("finalize namespace %s: %w", name, err)
	}
	c.log.Info("namespace emptied and finalized", "namespace", name)
	return framework.Result{}, nil
}
