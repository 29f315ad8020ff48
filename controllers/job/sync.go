package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/claim"
	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

// Reconcile syncs one Job: counts finished pods exactly once, then creates or deletes pods
// and writes the status and conditions.
func (c *Controller) Reconcile(ctx context.Context, key string) (framework.Result, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return framework.Result{}, framework.Terminal(err)
	}
	j, err := c.jobLister.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Delete(key)
		return framework.Result{}, c.releaseOrphans(ctx, ns, name, "")
	}
	if err != nil {
		return framework.Result{}, err
	}
	if err := c.releaseOrphans(ctx, ns, name, j.UID); err != nil {
		return framework.Result{}, err
	}
	if j.DeletionTimestamp != nil {
		// Foreground deletion waits for the pods; they must not wait for us.
		pods, err := c.ownedPods(j)
		if err != nil {
			return framework.Result{}, err
		}
		return framework.Result{}, c.removeFinalizers(ctx, pods)
	}
	if j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion {
		c.recorder.Event(j, corev1.EventTypeWarning, "UnsupportedCompletionMode", "skiff's job controller does not run Indexed Jobs yet")
		return framework.Result{}, framework.Terminal(fmt.Errorf("job %s: Indexed completion mode not supported", key))
	}
	sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
	if err != nil || sel.Empty() {
		return framework.Result{}, framework.Terminal(fmt.Errorf("job %s: bad selector: %v", key, err))
	}
	all, err := c.podLister.Pods(ns).List(labels.Everything())
	if err != nil {
		return framework.Result{}, err
	}
	pods, err := claim.Claim(ctx, c.claimer(j, sel), all)
	if err != nil {
		return framework.Result{}, err
	}
	now := time.Now()

	// 1. Finished pods still carrying the finalizer become uncounted, durably, before their
	// finalizer goes: a crash after this point cannot lose or double them.
	j, counted, err := c.trackFinished(ctx, j, pods)
	if err != nil {
		return framework.Result{}, err
	}

	// 2. Decide.
	var active []*corev1.Pod
	terminating := 0
	for _, p := range pods {
		switch {
		case podutil.IsActive(p):
			active = append(active, p)
		case p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && !hasTrackingFinalizer(p):
			terminating++
		}
	}
	st := j.Status.DeepCopy()
	st.Succeeded += counted.succeeded
	st.Failed += counted.failed
	if st.UncountedTerminatedPods != nil {
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{
			Succeeded: slices.DeleteFunc(slices.Clone(st.UncountedTerminatedPods.Succeeded), counted.uids.Has),
			Failed:    slices.DeleteFunc(slices.Clone(st.UncountedTerminatedPods.Failed), counted.uids.Has),
		}
	}
	failures, lastFailure := FailureHistory(j, pods, now)
	in := Input{Job: j, Active: active, Terminating: terminating,
		Succeeded: st.Succeeded + int32(len(uncounted(st).Succeeded)), Failed: st.Failed + int32(len(uncounted(st).Failed)),
		FailuresSinceSuccess: failures, LastFailure: lastFailure, Now: now, BackoffBase: c.backoffBase}
	var plan Plan
	var actErr error
	if c.expect.Satisfied(key) {
		plan = Decide(in)
		actErr = c.apply(ctx, key, j, plan)
	}
	if u := uncounted(st); plan.Finish != nil && len(u.Succeeded)+len(u.Failed) > 0 {
		// As the Job controller's enactJobFinished: Complete or Failed only once every
		// finished pod is counted in status (their finalizers go first, then the next
		// sync counts them), so a finished Job's succeeded and failed are final.
		plan.Finish = nil
		if plan.RequeueAfter == 0 {
			plan.RequeueAfter = 200 * time.Millisecond
		}
	}

	// 3. Status.
	if st.StartTime == nil && !suspended(j) {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	created := int32(0)
	if actErr == nil {
		created = int32(plan.Create)
	}
	st.Active = int32(len(active)) - int32(len(plan.Delete)) + created
	ready := int32(0)
	for _, p := range active {
		if podutil.IsReady(p) {
			ready++
		}
	}
	st.Ready = &ready
	term := int32(terminating)
	st.Terminating = &term
	setSuspended(st, j, now)
	for _, c := range []*batchv1.JobCondition{plan.Interim, plan.Finish} {
		if c != nil {
			x := *c
			x.LastProbeTime, x.LastTransitionTime = metav1.NewTime(now), metav1.NewTime(now)
			st.Conditions = append(st.Conditions, x)
		}
	}
	if plan.Finish != nil {
		st.Active = 0
		if plan.Finish.Type == batchv1.JobComplete {
			t := metav1.NewTime(now)
			st.CompletionTime = &t
		}
		c.recorder.Event(j, eventType(plan.Finish), eventReason(plan.Finish), plan.Finish.Message)
	}
	if err := c.updateStatus(ctx, j, st); err != nil {
		return framework.Result{}, errors.Join(actErr, err)
	}
	if actErr != nil {
		return framework.Result{}, actErr
	}
	return framework.Result{RequeueAfter: plan.RequeueAfter}, nil
}

func eventType(c *batchv1.JobCondition) string {
	if c.Type == batchv1.JobFailed {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}

func eventReason(c *batchv1.JobCondition) string {
	if c.Type == batchv1.JobComplete {
		return "Completed"
	}
	return c.Reason
}

func uncounted(st *batchv1.JobStatus) batchv1.UncountedTerminatedPods {
	if st.UncountedTerminatedPods == nil {
		return batchv1.UncountedTerminatedPods{}
	}
	return *st.UncountedTerminatedPods
}

func setSuspended(st *batchv1.JobStatus, j *batchv1.Job, now time.Time) {
	want := corev1.ConditionFalse
	reason, msg := "JobResumed", "Job resumed"
	if suspended(j) {
		want, reason, msg = corev1.ConditionTrue, "JobSuspended", "Job suspended"
	}
	for i := range st.Conditions {
		if c := &st.Conditions[i]; c.Type == batchv1.JobSuspended {
			if c.Status != want {
				c.Status, c.Reason, c.Message = want, reason, msg
				c.LastProbeTime, c.LastTransitionTime = metav1.NewTime(now), metav1.NewTime(now)
			}
			return
		}
	}
	if want == corev1.ConditionTrue {
		st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: batchv1.JobSuspended, Status: want, Reason: reason, Message: msg,
			LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)})
		st.StartTime = nil
	}
}

type countedPods struct {
	succeeded, failed int32
	uids              sets.Set[types.UID]
}

// trackFinished records newly finished pods in status.uncountedTerminatedPods, removes
// their tracking finalizers, and returns the uncounted pods that may now be counted (their
// finalizer is gone). It returns the Job as last written.
func (c *Controller) trackFinished(ctx context.Context, j *batchv1.Job, pods []*corev1.Pod) (*batchv1.Job, countedPods, error) {
	out := countedPods{uids: sets.New[types.UID]()}
	unc := uncounted(&j.Status)
	known := sets.New(unc.Succeeded...).Insert(unc.Failed...)
	c.mu.Lock()
	var newSucceeded, newFailed []types.UID
	for _, p := range pods {
		if !hasTrackingFinalizer(p) || known.Has(p.UID) || c.finalizerRemoved[p.UID] {
			continue
		}
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			newSucceeded = append(newSucceeded, p.UID)
		case IsFailed(j, p):
			newFailed = append(newFailed, p.UID)
		}
	}
	c.mu.Unlock()
	if len(newSucceeded)+len(newFailed) > 0 {
		st := j.Status.DeepCopy()
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{
			Succeeded: append(slices.Clone(unc.Succeeded), newSucceeded...),
			Failed:    append(slices.Clone(unc.Failed), newFailed...),
		}
		upd := j.DeepCopy()
		upd.Status = *st
		got, err := c.client.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
		if err != nil {
			return nil, out, fmt.Errorf("job %s/%s: record finished pods: %w", j.Namespace, j.Name, err)
		}
		j = got
		unc = *st.UncountedTerminatedPods
	}
	byUID := map[types.UID]*corev1.Pod{}
	for _, p := range pods {
		byUID[p.UID] = p
	}
	var strip []*corev1.Pod
	for _, uid := range append(slices.Clone(unc.Succeeded), unc.Failed...) {
		if p := byUID[uid]; p != nil && hasTrackingFinalizer(p) {
			strip = append(strip, p)
		}
	}
	stripErr := c.removeFinalizers(ctx, strip)
	c.mu.Lock()
	defer c.mu.Unlock()
	countable := func(uid types.UID) bool {
		p := byUID[uid]
		return p == nil || !hasTrackingFinalizer(p) || c.finalizerRemoved[uid]
	}
	for _, uid := range unc.Succeeded {
		if countable(uid) {
			out.succeeded++
			out.uids.Insert(uid)
		}
	}
	for _, uid := range unc.Failed {
		if countable(uid) {
			out.failed++
			out.uids.Insert(uid)
		}
	}
	return j, out, stripErr
}

var removeFinalizerPatch = func() []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer}}})
	return b
}()

// removeFinalizers strips the tracking finalizer from pods, in parallel.
func (c *Controller) removeFinalizers(ctx context.Context, pods []*corev1.Pod) error {
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, p := range pods {
		if !hasTrackingFinalizer(p) {
			continue
		}
		wg.Go(func() {
			_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, removeFinalizerPatch, metav1.PatchOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				errs[i] = err
				return
			}
			c.mu.Lock()
			c.finalizerRemoved[p.UID] = true
			c.mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// releaseOrphans strips the finalizer from pods that name Job ns/name as their controller
// but whose Job is gone (uid "") or was replaced by another of the same name.
func (c *Controller) releaseOrphans(ctx context.Context, ns, name string, uid types.UID) error {
	all, err := c.podLister.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var orphans []*corev1.Pod
	for _, p := range all {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref != nil && ref.Kind == controllerKind.Kind && ref.Name == name && ref.UID != uid && hasTrackingFinalizer(p) {
			orphans = append(orphans, p)
		}
	}
	return c.removeFinalizers(ctx, orphans)
}

func (c *Controller) ownedPods(j *batchv1.Job) ([]*corev1.Pod, error) {
	all, err := c.podLister.Pods(j.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.UID == j.UID {
			out = append(out, p)
		}
	}
	return out, nil
}

func (c *Controller) claimer(j *batchv1.Job, sel labels.Selector) *claim.Manager {
	return &claim.Manager{
		Owner: j, Ref: *podutil.ControllerRef(j, controllerKind.GroupVersion().String(), controllerKind.Kind), Selector: sel,
		Patch: func(ctx context.Context, ns, name string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
		CanAdopt: claim.RecheckOwner(j.UID, func(ctx context.Context) (metav1.Object, error) {
			return c.client.BatchV1().Jobs(j.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
		}),
	}
}

// apply creates and deletes pods under expectations.
func (c *Controller) apply(ctx context.Context, key string, j *batchv1.Job, plan Plan) error {
	if plan.Create == 0 && len(plan.Delete) == 0 {
		return nil
	}
	delKeys := make([]string, len(plan.Delete))
	for i, p := range plan.Delete {
		delKeys[i] = p.Namespace + "/" + p.Name
	}
	c.expect.Expect(key, plan.Create, delKeys)
	ref := podutil.ControllerRef(j, controllerKind.GroupVersion().String(), controllerKind.Kind)
	var wg sync.WaitGroup
	errs := make([]error, plan.Create+len(plan.Delete))
	for i := range plan.Create {
		wg.Go(func() {
			pod := podutil.FromTemplate(&j.Spec.Template, j.Namespace, podutil.GenerateNamePrefix(j.Name), ref)
			pod.Finalizers = append(pod.Finalizers, batchv1.JobTrackingFinalizer)
			got, err := c.client.CoreV1().Pods(j.Namespace).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				c.expect.CreationObserved(key)
				c.recorder.Eventf(j, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				errs[i] = err
				return
			}
			c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", got.Name)
		})
	}
	for i, p := range plan.Delete {
		wg.Go(func() {
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				c.expect.DeletionObserved(key, delKeys[i])
				c.recorder.Eventf(j, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				errs[plan.Create+i] = err
				return
			}
			c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// updateStatus writes st if it differs. A conflict is returned (and retried by the queue):
// the counts must be recomputed from a fresh Job, never merged blindly.
func (c *Controller) updateStatus(ctx context.Context, j *batchv1.Job, st *batchv1.JobStatus) error {
	if reflect.DeepEqual(&j.Status, st) {
		return nil
	}
	upd := j.DeepCopy()
	upd.Status = *st
	_, err := c.client.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status of job %s/%s: %w", j.Namespace, j.Name, err)
	}
	return nil
}
