// Package podgc is the pod garbage collector: every period it deletes the oldest terminated
// pods beyond the threshold, pods bound to nodes that no longer exist, and unscheduled pods
// stuck terminating (nothing else would ever finish their deletion).
package podgc

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// Plugin registers pod GC.
var Plugin = framework.Plugin{Name: "podgc", EventSource: "pod-garbage-collector", New: New}

// Controller is the pod garbage collector.
type Controller struct {
	client kubernetes.Interface
	log    *slog.Logger
	opts   framework.Options
	pods   corelisters.PodLister
	nodes  corelisters.NodeLister
	synced []cache.InformerSynced
}

// New wires pod GC to the pod and node informers.
func New(d framework.Deps) (framework.Controller, error) {
	podInf, nodeInf := d.Informers.Core().V1().Pods(), d.Informers.Core().V1().Nodes()
	return &Controller{client: d.Client, log: d.Logger, opts: d.Options, pods: podInf.Lister(), nodes: nodeInf.Lister(),
		synced: []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced}}, nil
}

// Run collects every period until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("podgc: caches did not sync: %w", context.Cause(ctx))
	}
	t := time.NewTicker(c.opts.PodGCPeriod)
	defer t.Stop()
	for {
		if err := c.collect(ctx); err != nil && ctx.Err() == nil {
			c.log.Info("pod GC pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// TerminatedToDelete picks the oldest terminated pods beyond threshold.
func TerminatedToDelete(pods []*corev1.Pod, threshold int) []*corev1.Pod {
	var done []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			done = append(done, p)
		}
	}
	n := len(done) - threshold
	if threshold <= 0 || n <= 0 {
		return nil
	}
	sort.SliceStable(done, func(i, j int) bool {
		if done[i].CreationTimestamp.Equal(&done[j].CreationTimestamp) {
			return done[i].Name < done[j].Name
		}
		return done[i].CreationTimestamp.Before(&done[j].CreationTimestamp)
	})
	return done[:n]
}

// Orphaned picks the pods bound to a node the cache does not know and unscheduled pods
// stuck terminating.
func Orphaned(pods []*corev1.Pod, nodeExists func(string) bool) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		switch {
		case p.Spec.NodeName == "" && p.DeletionTimestamp != nil:
			out = append(out, p)
		case p.Spec.NodeName != "" && !nodeExists(p.Spec.NodeName):
			out = append(out, p)
		}
	}
	return out
}

func (c *Controller) collect(ctx context.Context) error {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range TerminatedToDelete(pods, c.opts.TerminatedPodGCThreshold) {
		errs = append(errs, c.delete(ctx, p, nil))
	}
	zero := int64(0)
	cached := func(n string) bool { _, err := c.nodes.Get(n); return err == nil }
	for _, p := range Orphaned(pods, cached) {
		if p.Spec.NodeName != "" {
			// The cache may lag a node just created: ask the API before deleting.
			if _, err := c.client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				continue
			}
		}
		errs = append(errs, c.delete(ctx, p, &zero))
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (c *Controller) delete(ctx context.Context, p *corev1.Pod, grace *int64) error {
	c.log.Info("deleting pod", "pod", p.Namespace+"/"+p.Name, "node", p.Spec.NodeName, "phase", p.Status.Phase)
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: grace,
		Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}
