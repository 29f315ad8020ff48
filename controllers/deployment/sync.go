package deployment

import (
	"context"
	"fmt"
	"reflect"
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

// Reconcile moves one Deployment one step along its rollout and writes its status.
func (c *Controller) Reconcile(ctx context.Context, key string) (framework.Result, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return framework.Result{}, framework.Terminal(err)
	}
	cached, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return framework.Result{}, nil
	}
	if err != nil {
		return framework.Result{}, err
	}
	d := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return framework.Result{}, framework.Terminal(fmt.Errorf("deployment %s: selector: %w", key, err))
	}
	if sel.Empty() {
		c.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			_, err := c.client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
			return framework.Result{}, err
		}
		return framework.Result{}, nil
	}
	sets, err := c.claimReplicaSets(ctx, d, sel)
	if err != nil {
		return framework.Result{}, err
	}
	if d.DeletionTimestamp != nil {
		return c.syncStatusOnly(ctx, d, sets)
	}
	if d, err = c.checkPausedConditions(ctx, d); err != nil {
		return framework.Result{}, err
	}
	if d.Spec.Paused || IsScalingEvent(d, sets) {
		return c.sync(ctx, d, sets)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return c.rolloutRecreate(ctx, d, sets)
	}
	return c.rolloutRolling(ctx, d, sets)
}

func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	m := &claim.Manager{
		Owner:    d,
		Ref:      *podutil.ControllerRef(d, controllerKind.GroupVersion().String(), controllerKind.Kind),
		Selector: sel,
		Patch: func(ctx context.Context, ns, name string, patch []byte) error {
			_, err := c.client.AppsV1().ReplicaSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
		CanAdopt: claim.RecheckOwner(d.UID, func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		}),
	}
	return claim.Claim(ctx, m, all)
}

// findNewReplicaSet is the oldest ReplicaSet whose template is the Deployment's.
func findNewReplicaSet(d *appsv1.Deployment, sets []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet) {
	var newRS *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	for _, rs := range byCreation(sets) {
		if newRS == nil && EqualIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			newRS = rs
			continue
		}
		old = append(old, rs)
	}
	return newRS, old
}

// newAndOld finds (and with create, makes) the new ReplicaSet, keeping its revision and the
// Deployment's revision annotation current. d is updated in place with what was written.
func (c *Controller) newAndOld(ctx context.Context, d *appsv1.Deployment, sets []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	existing, old := findNewReplicaSet(d, sets)
	newRevision := MaxRevision(old) + 1
	if existing != nil {
		rs := existing.DeepCopy()
		annotationsChanged := SetNewReplicaSetAnnotations(d, rs, newRevision, true)
		if annotationsChanged || rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			updated, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
			if err != nil {
				return nil, nil, fmt.Errorf("update replicaset %s: %w", rs.Name, err)
			}
			rs = updated
		}
		needsUpdate := setDeploymentRevision(d, rs.Annotations[RevisionAnnotation])
		if HasProgressDeadline(d) && GetCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS,
				fmt.Sprintf("Found new replica set %q", rs.Name), time.Now()))
			needsUpdate = true
		}
		if needsUpdate {
			if err := c.updateStatus(ctx, d); err != nil {
				return nil, nil, err
			}
		}
		return rs, old, nil
	}
	if !create {
		return nil, old, nil
	}
	template := d.Spec.Template.DeepCopy()
	hash := ComputeHash(template, d.Status.CollisionCount)
	if template.Labels == nil {
		template.Labels = map[string]string{}
	}
	template.Labels[DefaultDeploymentUniqueLabelKey] = hash
	selector := d.Spec.Selector.DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[DefaultDeploymentUniqueLabelKey] = hash
	zero := int32(0)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*podutil.ControllerRef(d, controllerKind.GroupVersion().String(), controllerKind.Kind)},
			Labels:          template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &zero, MinReadySeconds: d.Spec.MinReadySeconds, Selector: selector, Template: *template},
	}
	n := NewRSNewReplicas(d, append(append([]*appsv1.ReplicaSet(nil), old...), rs), rs)
	rs.Spec.Replicas = &n
	SetNewReplicaSetAnnotations(d, rs, newRevision, false)
	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		have, gerr := c.client.AppsV1().ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		if gerr == nil && metav1.IsControlledBy(have, d) && EqualIgnoreHash(&have.Spec.Template, &d.Spec.Template) {
			// Ours, made by an earlier reconcile whose result the cache has not seen yet.
			return have, old, nil
		}
		// A hash collision: salt the hash and try again.
		cc := int32(0)
		if d.Status.CollisionCount != nil {
			cc = *d.Status.CollisionCount
		}
		cc++
		d.Status.CollisionCount = &cc
		if uerr := c.updateStatus(ctx, d); uerr != nil {
			return nil, nil, uerr
		}
		return nil, nil, fmt.Errorf("replicaset %s exists with another template (hash collision %d)", rs.Name, cc)
	}
	if err != nil {
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if HasProgressDeadline(d) {
			SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedRSCreate, msg, time.Now()))
			_ = c.updateStatus(ctx, d)
		}
		c.recorder.Event(d, corev1.EventTypeWarning, ReasonFailedRSCreate, msg)
		return nil, nil, fmt.Errorf("create replicaset %s: %w", rs.Name, err)
	}
	if n > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", created.Name, n)
	}
	setDeploymentRevision(d, created.Annotations[RevisionAnnotation])
	if HasProgressDeadline(d) {
		SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSCreated,
			fmt.Sprintf("Created new replica set %q", created.Name), time.Now()))
	}
	if err := c.updateStatus(ctx, d); err != nil {
		return nil, nil, err
	}
	return created, old, nil
}

func setDeploymentRevision(d *appsv1.Deployment, revision string) bool {
	if revision == "" || d.Annotations[RevisionAnnotation] == revision {
		return false
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = revision
	return true
}

// updateStatus writes d's status (and, as kube's status strategy allows, its annotations),
// refreshing d's resourceVersion.
func (c *Controller) updateStatus(ctx context.Context, d *appsv1.Deployment) error {
	out, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	d.ResourceVersion = out.ResourceVersion
	return nil
}

// scale applies one planned size, refreshing the replicas annotations, and records the
// event kubectl describe shows.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, s Scale) (*appsv1.ReplicaSet, error) {
	rs := s.RS.DeepCopy()
	from := replicas(rs)
	annotationsChanged := setReplicasAnnotations(rs, *d.Spec.Replicas, *d.Spec.Replicas+MaxSurge(d))
	if from == s.To && !annotationsChanged {
		return s.RS, nil
	}
	to := s.To
	rs.Spec.Replicas = &to
	out, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("scale replicaset %s to %d: %w", rs.Name, to, err)
	}
	if from != to {
		dir := "up"
		if to < from {
			dir = "down"
		}
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", dir, rs.Name, from, to)
	}
	return out, nil
}

// applyScales applies the plan and returns the ReplicaSets as they now are.
func (c *Controller) applyScales(ctx context.Context, d *appsv1.Deployment, plan []Scale, sets []*appsv1.ReplicaSet) ([]*appsv1.ReplicaSet, error) {
	out := append([]*appsv1.ReplicaSet(nil), sets...)
	for _, s := range plan {
		rs, err := c.scale(ctx, d, s)
		if err != nil {
			return nil, err
		}
		for i := range out {
			if out[i] != nil && out[i].UID == rs.UID {
				out[i] = rs
			}
		}
	}
	return out, nil
}

func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, sets []*appsv1.ReplicaSet) (framework.Result, error) {
	newRS, old, err := c.newAndOld(ctx, d, sets, true)
	if err != nil {
		return framework.Result{}, err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	if s := PlanNewReplicaSet(d, all, newRS); s != nil {
		if all, err = c.applyScales(ctx, d, []Scale{*s}, all); err != nil {
			return framework.Result{}, err
		}
		return c.syncRolloutStatus(ctx, d, all, all[len(all)-1])
	}
	if plan := PlanOldReplicaSets(d, all, old, newRS); len(plan) > 0 {
		if all, err = c.applyScales(ctx, d, plan, all); err != nil {
			return framework.Result{}, err
		}
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if Complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return framework.Result{}, err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, sets []*appsv1.ReplicaSet) (framework.Result, error) {
	newRS, old, err := c.newAndOld(ctx, d, sets, false)
	if err != nil {
		return framework.Result{}, err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	var down []Scale
	for _, rs := range old {
		if replicas(rs) > 0 {
			down = append(down, Scale{RS: rs, To: 0})
		}
	}
	if len(down) > 0 {
		if all, err = c.applyScales(ctx, d, down, all); err != nil {
			return framework.Result{}, err
		}
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if c.oldPodsRunning(old) {
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if newRS == nil {
		if newRS, old, err = c.newAndOld(ctx, d, sets, true); err != nil {
			return framework.Result{}, err
		}
		all = append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	}
	if replicas(newRS) != *d.Spec.Replicas {
		if all, err = c.applyScales(ctx, d, []Scale{{RS: newRS, To: *d.Spec.Replicas}}, all); err != nil {
			return framework.Result{}, err
		}
		newRS = all[len(all)-1]
	}
	if Complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return framework.Result{}, err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

// oldPodsRunning: any pod of an old ReplicaSet not yet finished (Recreate waits for them).
func (c *Controller) oldPodsRunning(old []*appsv1.ReplicaSet) bool {
	uids := map[types.UID]bool{}
	for _, rs := range old {
		if rs.Status.Replicas > 0 {
			return true
		}
		uids[rs.UID] = true
	}
	if len(old) == 0 {
		return false
	}
	pods, err := c.podLister.Pods(old[0].Namespace).List(labels.Everything())
	if err != nil {
		return true
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && uids[ref.UID] &&
			p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
			return true
		}
	}
	return false
}

// sync handles a paused deployment or a change of spec.replicas: scale only, no rollout.
func (c *Controller) sync(ctx context.Context, d *appsv1.Deployment, sets []*appsv1.ReplicaSet) (framework.Result, error) {
	newRS, old, err := c.newAndOld(ctx, d, sets, false)
	if err != nil {
		return framework.Result{}, err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	plan := PlanScale(d, newRS, old)
	planned := map[types.UID]bool{}
	for _, s := range plan {
		planned[s.RS.UID] = true
	}
	// Every active ReplicaSet is now sized for this spec.replicas, so the scaling event ends.
	for _, rs := range all {
		if rs != nil && replicas(rs) > 0 && !planned[rs.UID] {
			plan = append(plan, Scale{RS: rs, To: replicas(rs)})
		}
	}
	if all, err = c.applyScales(ctx, d, plan, all); err != nil {
		return framework.Result{}, err
	}
	if newRS != nil {
		newRS = all[len(all)-1]
	}
	if d.Spec.Paused {
		if err := c.cleanup(ctx, d, old); err != nil {
			return framework.Result{}, err
		}
	}
	return c.syncStatus(ctx, d, CalculateStatus(d, all, newRS, time.Now()))
}

func (c *Controller) syncStatusOnly(ctx context.Context, d *appsv1.Deployment, sets []*appsv1.ReplicaSet) (framework.Result, error) {
	newRS, old, err := c.newAndOld(ctx, d, sets, false)
	if err != nil {
		return framework.Result{}, err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	return c.syncStatus(ctx, d, CalculateStatus(d, all, newRS, time.Now()))
}

func (c *Controller) syncRolloutStatus(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (framework.Result, error) {
	return c.syncStatus(ctx, d, RolloutStatus(d, all, newRS, time.Now()))
}

func (c *Controller) syncStatus(ctx context.Context, d *appsv1.Deployment, st appsv1.DeploymentStatus) (framework.Result, error) {
	res := framework.Result{RequeueAfter: RecheckAfter(d, st, time.Now())}
	if reflect.DeepEqual(d.Status, st) {
		return res, nil
	}
	d.Status = st
	if err := c.updateStatus(ctx, d); err != nil {
		return framework.Result{}, err
	}
	return res, nil
}

// checkPausedConditions reports a pause or resume in the Progressing condition, as kubectl
// rollout status expects.
func (c *Controller) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) (*appsv1.Deployment, error) {
	if !HasProgressDeadline(d) {
		return d, nil
	}
	cond := GetCondition(d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == ReasonTimedOut {
		return d, nil // lack of progress stays reported
	}
	pausedShown := cond != nil && cond.Reason == ReasonPaused
	switch {
	case d.Spec.Paused && !pausedShown:
		SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", time.Now()))
	case !d.Spec.Paused && pausedShown:
		SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", time.Now()))
	default:
		return d, nil
	}
	return d, c.updateStatus(ctx, d)
}

// cleanup deletes old ReplicaSets beyond revisionHistoryLimit.
func (c *Controller) cleanup(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	for _, rs := range HistoryToDelete(d, old) {
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old replicaset %s: %w", rs.Name, err)
		}
	}
	return nil
}
