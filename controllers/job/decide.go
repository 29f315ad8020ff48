package job

import (
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

// Upstream constants (pkg/controller/job): the most pods created or deleted in one sync and
// the cap on the back-off between failed pods.
const (
	MaxPodCreateDeletePerSync = 500
	MaxPodFailureBackoff      = 6 * time.Minute
)

// Condition messages as kube-controller-manager words them.
const (
	msgBackoffLimit = "Job has reached the specified backoff limit"
	msgDeadline     = "Job was active longer than specified deadline"
	msgCompletions  = "Reached expected number of succeeded pods"
)

// Input is what Decide needs to know about one Job.
type Input struct {
	Job         *batchv1.Job
	Active      []*corev1.Pod // running or pending, not being deleted
	Terminating int           // being deleted, not finished
	Succeeded   int32         // counted and uncounted
	Failed      int32
	// Failures after the last success and when the last one finished, for the back-off.
	FailuresSinceSuccess int
	LastFailure          time.Time
	Now                  time.Time
	BackoffBase          time.Duration // 10s upstream
}

// Plan is what to do for one Job.
type Plan struct {
	Create int
	Delete []*corev1.Pod
	// Interim is FailureTarget or SuccessCriteriaMet, set as soon as the outcome is known;
	// Finish (Failed or Complete) follows once no pod is left running.
	Interim, Finish *batchv1.JobCondition
	RequeueAfter    time.Duration
}

// Finished returns the Job's Complete or Failed condition, if true.
func Finished(j *batchv1.Job) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		c := &j.Status.Conditions[i]
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func condition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func cond(t batchv1.JobConditionType, reason, msg string) *batchv1.JobCondition {
	return &batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg}
}

// restartsPastLimit is upstream's pastBackoffLimitOnFailure: under restartPolicy OnFailure
// the kubelet restarts containers in place, and those restarts count as failures.
func restartsPastLimit(j *batchv1.Job, active []*corev1.Pod) bool {
	if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var n int32
	for _, p := range active {
		for _, s := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			n += s.RestartCount
		}
	}
	limit := backoffLimit(j)
	if limit == 0 {
		return n > 0
	}
	return n >= limit
}

func backoffLimit(j *batchv1.Job) int32 {
	if j.Spec.BackoffLimit == nil {
		return 6
	}
	return *j.Spec.BackoffLimit
}

// FailureBackoff is the time left before the next pod may be created after failures
// (upstream getRemainingTimeForFailuresCount): base, doubled per further failure, capped.
func FailureBackoff(failures int, last time.Time, base time.Duration, now time.Time) time.Duration {
	if failures == 0 || last.IsZero() {
		return 0
	}
	d := base
	for i := 1; i < failures; i++ {
		d *= 2
		if d >= MaxPodFailureBackoff {
			d = MaxPodFailureBackoff
			break
		}
	}
	elapsed := now.Sub(last)
	if d < elapsed {
		return 0
	}
	return d - elapsed
}

// Decide is the Job controller's decision for one sync, as upstream's syncJob and
// manageJob: fail past backoffLimit or activeDeadlineSeconds, succeed at completions (or,
// without completions, at the first success once nothing runs), else keep
// min(parallelism, remaining completions) pods active, waiting out the failure back-off
// before creating.
func Decide(in Input) Plan {
	j := in.Job
	var p Plan
	if Finished(j) != nil {
		return p
	}
	active := int32(len(in.Active))
	settle := func(interim, final *batchv1.JobCondition) Plan {
		if condition(j, interim.Type) == nil {
			p.Interim = interim
		}
		p.Delete = in.Active
		if len(in.Active) == 0 && in.Terminating == 0 {
			f := *final
			p.Finish = &f
		}
		return p
	}
	// Failure.
	if c := condition(j, batchv1.JobFailureTarget); c != nil {
		return settle(c, cond(batchv1.JobFailed, c.Reason, c.Message))
	}
	if in.Failed > backoffLimit(j) || restartsPastLimit(j, in.Active) {
		return settle(cond(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded, msgBackoffLimit),
			cond(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, msgBackoffLimit))
	}
	var deadline time.Duration
	if ads := j.Spec.ActiveDeadlineSeconds; ads != nil && j.Status.StartTime != nil && !suspended(j) {
		deadline = j.Status.StartTime.Add(time.Duration(*ads) * time.Second).Sub(in.Now)
		if deadline <= 0 {
			return settle(cond(batchv1.JobFailureTarget, batchv1.JobReasonDeadlineExceeded, msgDeadline),
				cond(batchv1.JobFailed, batchv1.JobReasonDeadlineExceeded, msgDeadline))
		}
		p.RequeueAfter = deadline
	}
	// Success.
	success := condition(j, batchv1.JobSuccessCriteriaMet) != nil
	if j.Spec.Completions != nil {
		success = success || in.Succeeded >= *j.Spec.Completions
	} else {
		success = success || (in.Succeeded > 0 && active == 0)
	}
	if success {
		return settle(cond(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, msgCompletions),
			cond(batchv1.JobComplete, batchv1.JobReasonCompletionsReached, msgCompletions))
	}
	// Keep the right number of pods running.
	parallelism := int32(1)
	if j.Spec.Parallelism != nil {
		parallelism = *j.Spec.Parallelism
	}
	var want int32
	switch {
	case suspended(j):
		want = 0
	case j.Spec.Completions == nil && in.Succeeded > 0:
		want = active // one success: let the others finish, start no more
	case j.Spec.Completions == nil:
		want = parallelism
	default:
		want = max(0, min(parallelism, *j.Spec.Completions-in.Succeeded))
	}
	switch {
	case active > want:
		p.Delete = RemovalOrder(in.Active)[:min(int(active-want), MaxPodCreateDeletePerSync)]
	case active < want:
		if wait := FailureBackoff(in.FailuresSinceSuccess, in.LastFailure, in.BackoffBase, in.Now); wait > 0 {
			if p.RequeueAfter == 0 || wait < p.RequeueAfter {
				p.RequeueAfter = wait
			}
			return p
		}
		p.Create = min(int(want-active), MaxPodCreateDeletePerSync)
	}
	return p
}

func suspended(j *batchv1.Job) bool { return j.Spec.Suspend != nil && *j.Spec.Suspend }

// RemovalOrder sorts pods the way upstream picks excess Job pods to delete: unscheduled
// before scheduled, pending before running, not ready before ready, then the youngest.
func RemovalOrder(pods []*corev1.Pod) []*corev1.Pod {
	out := append([]*corev1.Pod(nil), pods...)
	rank := func(p *corev1.Pod) int {
		switch {
		case p.Spec.NodeName == "":
			return 0
		case p.Status.Phase == corev1.PodPending:
			return 1
		case !podutil.IsReady(p):
			return 2
		}
		return 3
	}
	sort.SliceStable(out, func(i, k int) bool {
		a, b := out[i], out[k]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	})
	return out
}

// FinishTime is when a pod finished (upstream getFinishedTime): its containers' latest
// termination, else when it stopped being ready, else its deletion, else now.
func FinishTime(p *corev1.Pod, now time.Time) time.Time {
	var t time.Time
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Terminated != nil && s.State.Terminated.FinishedAt.After(t) {
			t = s.State.Terminated.FinishedAt.Time
		}
	}
	if !t.IsZero() {
		return t
	}
	if c := podutil.Condition(p, corev1.PodReady); c != nil && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
		return c.LastTransitionTime.Time
	}
	if p.DeletionTimestamp != nil {
		return p.DeletionTimestamp.Time
	}
	return now
}

// IsFailed: failed, or (under TerminatingOrFailed replacement) deleted before it succeeded;
// upstream counts those as failures so that an orphaned pod is not lost.
func IsFailed(j *batchv1.Job, p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodFailed {
		return true
	}
	if j.Spec.PodReplacementPolicy != nil && *j.Spec.PodReplacementPolicy == batchv1.Failed {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

// FailureHistory counts the failed pods that finished after the last succeeded one and
// returns the latest failure time, for FailureBackoff.
func FailureHistory(j *batchv1.Job, pods []*corev1.Pod, now time.Time) (int, time.Time) {
	var lastSuccess, lastFailure time.Time
	type fin struct {
		at     time.Time
		failed bool
	}
	var fins []fin
	for _, p := range pods {
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			at := FinishTime(p, now)
			if at.After(lastSuccess) {
				lastSuccess = at
			}
		case IsFailed(j, p):
			fins = append(fins, fin{FinishTime(p, now), true})
		}
	}
	n := 0
	for _, f := range fins {
		if f.at.After(lastSuccess) {
			n++
			if f.at.After(lastFailure) {
				lastFailure = f.at
			}
		}
	}
	return n, lastFailure
}
