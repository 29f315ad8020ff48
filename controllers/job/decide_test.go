package job

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func job(mut ...func(*batchv1.Job)) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: "default"},
		Spec: batchv1.JobSpec{Completions: ptr(int32(5)), Parallelism: ptr(int32(2)), BackoffLimit: ptr(int32(3)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever}}}}
	for _, m := range mut {
		m(j)
	}
	return j
}

func running(n int) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range n {
		out = append(out, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i),
			CreationTimestamp: metav1.NewTime(now.Add(-time.Duration(i) * time.Minute))},
			Spec: corev1.PodSpec{NodeName: "n"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}})
	}
	return out
}

func withCondition(t batchv1.JobConditionType, reason string) func(*batchv1.Job) {
	return func(j *batchv1.Job) {
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason})
	}
}

func TestDecide(t *testing.T) {
	started := func(ago time.Duration) func(*batchv1.Job) {
		return func(j *batchv1.Job) { s := metav1.NewTime(now.Add(-ago)); j.Status.StartTime = &s }
	}
	cases := []struct {
		name        string
		in          Input
		create, del int
		interim     string // "Type/Reason"
		finish      string
		requeue     time.Duration
	}{
		{name: "new job: parallelism pods", in: Input{Job: job()}, create: 2},
		{name: "parallelism capped by remaining completions", in: Input{Job: job(), Active: running(0), Succeeded: 4}, create: 1},
		{name: "enough running", in: Input{Job: job(), Active: running(2), Succeeded: 1}},
		{name: "parallelism lowered: delete extras", in: Input{Job: job(func(j *batchv1.Job) { j.Spec.Parallelism = ptr(int32(1)) }), Active: running(3)}, del: 2},
		{name: "completions reached with pods running: they go, interim condition", in: Input{Job: job(), Active: running(1), Succeeded: 5},
			del: 1, interim: "SuccessCriteriaMet/CompletionsReached"},
		{name: "completions reached, nothing running: complete",
			in:     Input{Job: job(withCondition(batchv1.JobSuccessCriteriaMet, "CompletionsReached")), Succeeded: 5},
			finish: "Complete/CompletionsReached"},
		{name: "terminating pods hold back Complete", in: Input{Job: job(), Succeeded: 5, Terminating: 1},
			interim: "SuccessCriteriaMet/CompletionsReached"},
		{name: "no completions: run parallelism until one succeeds", in: Input{Job: job(func(j *batchv1.Job) { j.Spec.Completions = nil })}, create: 2},
		{name: "no completions: one succeeded, others finish, none started", in: Input{Job: job(func(j *batchv1.Job) { j.Spec.Completions = nil }),
			Active: running(1), Succeeded: 1}},
		{name: "no completions: one succeeded and none running: complete", in: Input{Job: job(func(j *batchv1.Job) { j.Spec.Completions = nil }),
			Succeeded: 1}, interim: "SuccessCriteriaMet/CompletionsReached", finish: "Complete/CompletionsReached"},
		{name: "failures at the limit: keep trying", in: Input{Job: job(), Failed: 3}, create: 2},
		{name: "failures past backoffLimit: fail, delete the running pods", in: Input{Job: job(), Active: running(2), Failed: 4},
			del: 2, interim: "FailureTarget/BackoffLimitExceeded"},
		{name: "failure target and nothing running: Failed", in: Input{Job: job(withCondition(batchv1.JobFailureTarget, "BackoffLimitExceeded")), Failed: 4},
			finish: "Failed/BackoffLimitExceeded"},
		{name: "backoffLimit 0 under OnFailure: any restart fails the job", in: Input{Job: job(func(j *batchv1.Job) {
			j.Spec.BackoffLimit = ptr(int32(0))
			j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
		}), Active: func() []*corev1.Pod {
			p := running(1)
			p[0].Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: 1}}
			return p
		}()}, del: 1, interim: "FailureTarget/BackoffLimitExceeded"},
		{name: "active deadline passed", in: Input{Job: job(started(2*time.Minute), func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = ptr(int64(60)) }),
			Active: running(2)}, del: 2, interim: "FailureTarget/DeadlineExceeded"},
		{name: "active deadline ahead: look again then", in: Input{Job: job(started(20*time.Second), func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = ptr(int64(60)) }),
			Active: running(2)}, requeue: 40 * time.Second},
		{name: "after two failures wait 2x the base", in: Input{Job: job(), Failed: 2, FailuresSinceSuccess: 2, LastFailure: now.Add(-5 * time.Second),
			BackoffBase: 10 * time.Second}, requeue: 15 * time.Second},
		{name: "back-off over: create", in: Input{Job: job(), Failed: 1, FailuresSinceSuccess: 1, LastFailure: now.Add(-11 * time.Second),
			BackoffBase: 10 * time.Second}, create: 2},
		{name: "suspended: running pods deleted", in: Input{Job: job(func(j *batchv1.Job) { j.Spec.Suspend = ptr(true) }), Active: running(2)}, del: 2},
		{name: "finished: nothing", in: Input{Job: job(withCondition(batchv1.JobComplete, "CompletionsReached")), Active: running(1)}},
	}
	str := func(c *batchv1.JobCondition) string {
		if c == nil {
			return ""
		}
		return string(c.Type) + "/" + c.Reason
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = now
			p := Decide(tc.in)
			if p.Create != tc.create || len(p.Delete) != tc.del || str(p.Interim) != tc.interim || str(p.Finish) != tc.finish || p.RequeueAfter != tc.requeue {
				t.Fatalf("got create=%d delete=%d interim=%q finish=%q requeue=%v; want %d %d %q %q %v",
					p.Create, len(p.Delete), str(p.Interim), str(p.Finish), p.RequeueAfter, tc.create, tc.del, tc.interim, tc.finish, tc.requeue)
			}
		})
	}
}

func TestFailureBackoffDoublesAndCaps(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{0, 0}, {1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {10, MaxPodFailureBackoff}} {
		if got := FailureBackoff(tc.failures, now, 10*time.Second, now); got != tc.want {
			t.Errorf("%d failures: %v, want %v", tc.failures, got, tc.want)
		}
	}
}

func TestFailureHistoryCountsFailuresAfterTheLastSuccess(t *testing.T) {
	finished := func(phase corev1.PodPhase, ago time.Duration) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(now.Add(-ago))}}}}}}
	}
	pods := []*corev1.Pod{finished(corev1.PodFailed, 5*time.Minute), finished(corev1.PodSucceeded, 4*time.Minute),
		finished(corev1.PodFailed, 3*time.Minute), finished(corev1.PodFailed, time.Minute)}
	n, last := FailureHistory(job(), pods, now)
	if n != 2 || !last.Equal(now.Add(-time.Minute)) {
		t.Fatalf("failures %d last %v", n, last)
	}
}

func TestRemovalOrderTakesUnscheduledAndYoungFirst(t *testing.T) {
	pods := running(3) // p0 youngest
	pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unscheduled", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))}})
	got := RemovalOrder(pods)
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if fmt.Sprint(names) != "[unscheduled p0 p1 p2]" {
		t.Fatalf("order %v", names)
	}
}
