package replicaset

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

func isReady(p *corev1.Pod) bool { return podutil.IsReady(p) }

// Reconcile brings one ReplicaSet's pods to spec.replicas and writes its status.
func (c *Controller) Reconcile(ctx context.Context, key string) (framework.Result, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return framework.Result{}, framework.Terminal(err)
	}
	rs, err := c.rsLister.ReplicaSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Delete(key)
		return framework.Result{}, nil
	}
	if err != nil {
		return framework.Result{}, err
	}
	needsSync := c.expect.Satisfied(key)
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || sel.Empty() {
		return framework.Result{}, framework.Terminal(fmt.Errorf("replicaset %s: bad selector: %v", key, err))
	}
	// Its own pods (to keep, or release when they no longer match) and the namespace's
	// orphans (to adopt): the others belong to other controllers and would be skipped.
	candidates := podutil.PodsOfControllers(c.pods, []types.UID{rs.UID}, ns)
	owned, err := claim.Claim(ctx, c.claimer(rs, sel), candidates)
	if err != nil {
		return framework.Result{}, err
	}
	var active []*corev1.Pod
	var terminating int32
	for _, p := range owned {
		switch {
		case podutil.IsActive(p):
			active = append(active, p)
		case p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed:
			terminating++
		}
	}
	var manageErr error
	var failReason string
	if needsSync && rs.DeletionTimestamp == nil {
		failReason, manageErr = c.manageReplicas(ctx, key, rs, active)
	}
	now := time.Now()
	st := CalculateStatus(rs, active, terminating, manageErr, failReason, now)
	updated, err := c.updateStatus(ctx, rs, st)
	if err != nil {
		return framework.Result{}, errors.Join(manageErr, err)
	}
	if manageErr != nil {
		return framework.Result{}, manageErr
	}
	// Pods ready but not yet available become available after minReadySeconds.
	if updated != nil && rs.Spec.MinReadySeconds > 0 && updated.ReadyReplicas == *rs.Spec.Replicas &&
		updated.AvailableReplicas != *rs.Spec.Replicas {
		return framework.Result{RequeueAfter: time.Duration(rs.Spec.MinReadySeconds) * time.Second}, nil
	}
	return framework.Result{}, nil
}

func (c *Controller) claimer(rs *appsv1.ReplicaSet, sel labels.Selector) *claim.Manager {
	return &claim.Manager{
		Owner:    rs,
		Ref:      *podutil.ControllerRef(rs, controllerKind.GroupVersion().String(), controllerKind.Kind),
		Selector: sel,
		Patch: func(ctx context.Context, ns, name string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
		CanAdopt: claim.RecheckOwner(rs.UID, func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		}),
	}
}

// manageReplicas creates or deletes pods toward spec.replicas. It returns the
// ReplicaFailure reason with the error.
func (c *Controller) manageReplicas(ctx context.Context, key string, rs *appsv1.ReplicaSet, active []*corev1.Pod) (string, error) {
	diff := ReplicaDiff(len(active), *rs.Spec.Replicas, BurstReplicas)
	switch {
	case diff > 0:
		c.expect.ExpectCreations(key, diff)
		ref := podutil.ControllerRef(rs, controllerKind.GroupVersion().String(), controllerKind.Kind)
		created := 0
		for _, batch := range SlowStartBatches(diff) {
			n, err := c.createBatch(ctx, rs, ref, batch)
			created += n
			if err != nil {
				// The creations never asked for will never be observed.
				for range diff - created {
					c.expect.CreationObserved(key)
				}
				return "FailedCreate", err
			}
		}
	case diff < 0:
		// Siblings count for ranking: a Deployment's pods doubled up on one node go first.
		related := active
		if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
			related = c.relatedPods(rs, ref.UID)
		}
		victims := PodsToDelete(active, related, -diff, time.Now())
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = p.Namespace + "/" + p.Name
		}
		c.expect.ExpectDeletions(key, keys)
		var wg sync.WaitGroup
		errs := make([]error, len(victims))
		for i, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					c.expect.DeletionObserved(key, keys[i])
					c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					errs[i] = err
					return
				}
				c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return "FailedDelete", err
		}
	}
	return "", nil
}

func (c *Controller) createBatch(ctx context.Context, rs *appsv1.ReplicaSet, ref *metav1.OwnerReference, n int) (int, error) {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pod := podutil.FromTemplate(&rs.Spec.Template, rs.Namespace, podutil.GenerateNamePrefix(rs.Name), ref)
			got, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				errs[i] = err
				return
			}
			c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", got.Name)
		}()
	}
	wg.Wait()
	ok := 0
	for _, e := range errs {
		if e == nil {
			ok++
		}
	}
	return ok, errors.Join(errs...)
}

// relatedPods are the active pods of every ReplicaSet sharing rs's controller.
func (c *Controller) relatedPods(rs *appsv1.ReplicaSet, owner types.UID) []*corev1.Pod {
	sets, _ := c.rsLister.ReplicaSets(rs.Namespace).List(labels.Everything())
	var uids []types.UID
	for _, s := range sets {
		if r := metav1.GetControllerOfNoCopy(s); r != nil && r.UID == owner {
			uids = append(uids, s.UID)
		}
	}
	var out []*corev1.Pod
	for _, p := range podutil.PodsOfControllers(c.pods, uids, "") {
		if podutil.IsActive(p) {
			out = append(out, p)
		}
	}
	return out
}

// updateStatus writes st if it differs, re-reading the ReplicaSet on a conflict.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) (*appsv1.ReplicaSetStatus, error) {
	if reflect.DeepEqual(rs.Status, st) {
		return &st, nil
	}
	cur := rs.DeepCopy()
	for attempt := 0; ; attempt++ {
		cur.Status = st
		out, err := c.client.AppsV1().ReplicaSets(cur.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if err == nil {
			return &out.Status, nil
		}
		if !apierrors.IsConflict(err) || attempt >= 1 {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("update status of replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
		}
		if cur, err = c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("update status of replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
		}
	}
}
