package daemonset

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/claim"
	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

// Reconcile brings one DaemonSet to a pod per eligible node of its current revision and
// writes its status.
func (c *Controller) Reconcile(ctx context.Context, key string) (framework.Result, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return framework.Result{}, framework.Terminal(err)
	}
	ds, err := c.dsLister.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Delete(key)
		return framework.Result{}, nil
	}
	if err != nil {
		return framework.Result{}, err
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		return framework.Result{}, framework.Terminal(fmt.Errorf("daemonset %s: bad selector: %v", key, err))
	}
	if ds.DeletionTimestamp != nil {
		return framework.Result{}, nil // the garbage collector removes the pods
	}
	hash, old, err := c.history(ctx, ds, sel)
	if err != nil {
		return framework.Result{}, fmt.Errorf("daemonset %s: history: %w", key, err)
	}
	nodes, err := c.nodeStates(ctx, ds, sel)
	if err != nil {
		return framework.Result{}, err
	}
	now := time.Now()
	var actErr error
	var requeue time.Duration
	if c.expect.Satisfied(key) {
		requeue, actErr = c.manage(ctx, key, ds, nodes, hash, now)
		if actErr == nil && c.expect.Satisfied(key) && ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
			plan, err := PlanRollingUpdate(ds, nodes, hash, now)
			if err != nil {
				return framework.Result{}, framework.Terminal(err)
			}
			actErr = c.apply(ctx, key, ds, plan.CreateOnto, plan.Delete, hash)
		}
		if actErr == nil {
			actErr = c.cleanupHistory(ctx, ds, old, nodes)
		}
	}
	st := Status(ds, nodes, hash, now)
	if err := c.updateStatus(ctx, ds, st); err != nil {
		return framework.Result{}, errors.Join(actErr, err)
	}
	if actErr != nil {
		return framework.Result{}, actErr
	}
	if ds.Spec.MinReadySeconds > 0 && st.NumberAvailable < st.NumberReady {
		requeue = minPositive(requeue, time.Duration(ds.Spec.MinReadySeconds)*time.Second)
	}
	return framework.Result{RequeueAfter: requeue}, nil
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	return min(a, b)
}

// nodeStates claims the DaemonSet's pods and groups them by target node, with each node's
// verdict. Pods aimed at nodes that no longer exist are grouped under a nil node (deleted).
func (c *Controller) nodeStates(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector) ([]NodeState, error) {
	all, err := c.podLister.Pods(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	m := &claim.Manager{
		Owner: ds, Ref: *podutil.ControllerRef(ds, controllerKind.GroupVersion().String(), controllerKind.Kind), Selector: sel,
		Patch: func(ctx context.Context, ns, name string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
		CanAdopt: claim.RecheckOwner(ds.UID, func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
		}),
	}
	owned, err := claim.Claim(ctx, m, all)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]*corev1.Pod{}
	for _, p := range owned {
		// A deleted pod that finished is gone for every purpose.
		if p.DeletionTimestamp != nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			continue
		}
		byNode[TargetNode(p)] = append(byNode[TargetNode(p)], p)
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]NodeState, 0, len(nodes))
	for _, n := range nodes {
		run, cont := ShouldRun(n, ds)
		out = append(out, NodeState{Node: n, Pods: byNode[n.Name], ShouldRun: run, ShouldContinue: cont})
		delete(byNode, n.Name)
	}
	// Pods for nodes that are gone (or pinned nowhere): not ours to keep.
	for node, pods := range byNode {
		out = append(out, NodeState{Node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, Pods: pods})
	}
	return out, nil
}

// manage creates the missing daemon pods and deletes the ones that should not be there.
func (c *Controller) manage(ctx context.Context, key string, ds *appsv1.DaemonSet, nodes []NodeState, hash string, now time.Time) (time.Duration, error) {
	var create []string
	var del []*corev1.Pod
	var requeue time.Duration
	for _, n := range nodes {
		a := PlanNode(ds, n, hash, now)
		if a.Create {
			create = append(create, n.Node.Name)
		}
		del = append(del, a.Delete...)
		if len(a.DeleteFailed) > 0 {
			bk := string(ds.UID) + "/" + n.Node.Name
			c.failedMu.Lock()
			if c.failedBackoff.IsInBackOffSinceUpdate(bk, now) {
				requeue = minPositive(requeue, c.failedBackoff.Get(bk))
			} else {
				c.failedBackoff.Next(bk, now)
				del = append(del, a.DeleteFailed...)
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try to kill it",
					ds.Namespace, a.DeleteFailed[0].Name, n.Node.Name)
			}
			c.failedMu.Unlock()
		}
	}
	return requeue, c.apply(ctx, key, ds, create, del, hash)
}

// apply creates a pod of the current revision on each node and deletes the pods, all in
// parallel, under expectations.
func (c *Controller) apply(ctx context.Context, key string, ds *appsv1.DaemonSet, create []string, del []*corev1.Pod, hash string) error {
	if len(create) == 0 && len(del) == 0 {
		return nil
	}
	delKeys := make([]string, len(del))
	for i, p := range del {
		delKeys[i] = p.Namespace + "/" + p.Name
	}
	c.expect.Expect(key, len(create), delKeys)
	ref := podutil.ControllerRef(ds, controllerKind.GroupVersion().String(), controllerKind.Kind)
	var wg sync.WaitGroup
	errs := make([]error, len(create)+len(del))
	for i, node := range create {
		wg.Go(func() {
			pod := podutil.FromTemplate(&ds.Spec.Template, ds.Namespace, podutil.GenerateNamePrefix(ds.Name), ref)
			if pod.Labels == nil {
				pod.Labels = map[string]string{}
			}
			pod.Labels[HashLabel] = hash
			AddDaemonTolerations(&pod.Spec)
			PinToNode(&pod.Spec, node)
			got, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				c.expect.CreationObserved(key)
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				errs[i] = err
				return
			}
			c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", got.Name)
		})
	}
	for i, p := range del {
		wg.Go(func() {
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				c.expect.DeletionObserved(key, delKeys[i])
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				errs[len(create)+i] = err
				return
			}
			c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// updateStatus writes st if it differs, re-reading the DaemonSet once on a conflict.
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, st appsv1.DaemonSetStatus) error {
	if reflect.DeepEqual(ds.Status, st) {
		return nil
	}
	cur := ds.DeepCopy()
	for attempt := 0; ; attempt++ {
		cur.Status = st
		_, err := c.client.AppsV1().DaemonSets(cur.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 1 {
			return fmt.Errorf("update status of daemonset %s/%s: %w", ds.Namespace, ds.Name, err)
		}
		if cur, err = c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("update status of daemonset %s/%s: %w", ds.Namespace, ds.Name, err)
		}
		st.CollisionCount = cur.Status.CollisionCount
	}
}
