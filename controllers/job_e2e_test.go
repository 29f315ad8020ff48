package controllers_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
)

func jobYAML(name string, completions, parallelism, backoffLimit int, extra string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  namespace: default
spec:
  completions: %d
  parallelism: %d
  backoffLimit: %d
%s  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: testimage:v1
`, name, completions, parallelism, backoffLimit, extra)
}

// jobRunner plays the containers of Jobs' pods: once the hollow node reports a pod
// Running, it ends it with the phase its Job is given (a Job without one runs forever). It
// records the most pods of each Job running at once.
type jobRunner struct {
	mu      sync.Mutex
	outcome map[string]corev1.PodPhase
	running map[string]map[string]bool
	peak    map[string]int
}

func startJobRunner(t *testing.T, c *controlPlane) *jobRunner {
	r := &jobRunner{outcome: map[string]corev1.PodPhase{}, running: map[string]map[string]bool{}, peak: map[string]int{}}
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().Pods().Informer()
	handle := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		job := p.Labels[batchv1.JobNameLabel]
		if !ok || job == "" {
			return
		}
		r.mu.Lock()
		if r.running[job] == nil {
			r.running[job] = map[string]bool{}
		}
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			r.running[job][p.Name] = true
		} else {
			delete(r.running[job], p.Name)
		}
		r.peak[job] = max(r.peak[job], len(r.running[job]))
		phase := r.outcome[job]
		r.mu.Unlock()
		if phase == "" || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			return
		}
		cur := p.DeepCopy()
		code := int32(0)
		if phase == corev1.PodFailed {
			code = 1
		}
		now := metav1.Now()
		cur.Status.Phase = phase
		cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now}}
		cur.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "work", Image: "testimage:v1", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: now, Reason: map[bool]string{true: "Completed", false: "Error"}[code == 0]}}}}
		_, _ = c.client.CoreV1().Pods(p.Namespace).UpdateStatus(c.ctx, cur, metav1.UpdateOptions{})
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, o any) { handle(o) },
		DeleteFunc: func(o any) {
			if p, ok := o.(*corev1.Pod); ok {
				r.mu.Lock()
				delete(r.running[p.Labels[batchv1.JobNameLabel]], p.Name)
				r.mu.Unlock()
			}
		}})
	stop := make(chan struct{})
	factory.Start(stop)
	cache.WaitForCacheSync(stop, inf.HasSynced)
	t.Cleanup(func() { close(stop); factory.Shutdown() })
	return r
}

func (r *jobRunner) set(job string, phase corev1.PodPhase) {
	r.mu.Lock()
	r.outcome[job] = phase
	r.mu.Unlock()
}

func (r *jobRunner) peakRunning(job string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak[job]
}

func (c *controlPlane) jobPods(t *testing.T, job string) []corev1.Pod {
	t.Helper()
	pods, err := c.client.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// TestJobsCompleteAndFail: with real kubectl, a Job of 4 completions 2 at a time reaches
// Complete; a Job whose pods all fail stops at backoffLimit+1 pods and is Failed; a Job past
// activeDeadlineSeconds is Failed and its running pod removed.
func TestJobsCompleteAndFail(t *testing.T) {
	c := startControlPlane(t, []string{"scheduler", "job"}, framework.Options{JobPodFailureBackoff: 100 * time.Millisecond})
	for i := 1; i <= 2; i++ {
		c.hollow.addNode(c.ctx, fmt.Sprintf("node-%d", i), "4", "8Gi")
	}
	r := startJobRunner(t, c)
	r.set("pi", corev1.PodSucceeded)
	r.set("flaky", corev1.PodFailed)

	c.mustKubectl(t, jobYAML("pi", 4, 2, 6, ""), "job.batch/pi created", "apply", "-f", "-")
	c.mustKubectl(t, jobYAML("flaky", 3, 1, 2, ""), "job.batch/flaky created", "apply", "-f", "-")
	c.mustKubectl(t, jobYAML("slow", 1, 1, 6, "  activeDeadlineSeconds: 3\n"), "job.batch/slow created", "apply", "-f", "-")

	c.mustKubectl(t, "", "job.batch/pi condition met", "wait", "--for=condition=complete", "job/pi", "--timeout=60s")
	j, err := c.client.BatchV1().Jobs("default").Get(c.ctx, "pi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := j.Status; st.Succeeded != 4 || st.Failed != 0 || st.Active != 0 || st.StartTime == nil || st.CompletionTime == nil ||
		st.CompletionTime.Before(st.StartTime) {
		t.Errorf("pi status: %+v", st)
	}
	pods := c.jobPods(t, "pi")
	if len(pods) != 4 {
		t.Errorf("pi ran %d pods, want 4", len(pods))
	}
	for _, p := range pods {
		if p.Labels[batchv1.ControllerUidLabel] != string(j.UID) || p.Labels["job-name"] != "pi" {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
		if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("pod %s still has the tracking finalizer", p.Name)
		}
	}
	if peak := r.peakRunning("pi"); peak > 2 {
		t.Errorf("%d pi pods ran at once; parallelism is 2", peak)
	}
	out := c.mustKubectl(t, "", "pi", "get", "job", "pi", "--no-headers")
	if !strings.Contains(out, "Complete") || !strings.Contains(out, "4/4") {
		t.Errorf("kubectl get job: %s", out)
	}

	c.mustKubectl(t, "", "job.batch/flaky condition met", "wait", "--for=condition=failed", "job/flaky", "--timeout=60s")
	j, err = c.client.BatchV1().Jobs("default").Get(c.ctx, "flaky", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var failedCond *batchv1.JobCondition
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == batchv1.JobFailed {
			failedCond = &j.Status.Conditions[i]
		}
	}
	if failedCond == nil || failedCond.Reason != "BackoffLimitExceeded" || j.Status.Failed != 3 || j.Status.Succeeded != 0 || j.Status.Active != 0 {
		t.Errorf("flaky: failed condition %+v, status %+v", failedCond, j.Status)
	}
	if n := len(c.jobPods(t, "flaky")); n != 3 {
		t.Errorf("flaky ran %d pods, want backoffLimit+1 = 3", n)
	}

	c.mustKubectl(t, "", "job.batch/slow condition met", "wait", "--for=condition=failed", "job/slow", "--timeout=30s")
	j, err = c.client.BatchV1().Jobs("default").Get(c.ctx, "slow", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fc := j.Status.Conditions[len(j.Status.Conditions)-1]; fc.Type != batchv1.JobFailed || fc.Reason != "DeadlineExceeded" || j.Status.Active != 0 {
		t.Errorf("slow: conditions %+v active %d", j.Status.Conditions, j.Status.Active)
	}
	eventually(t, 10*time.Second, "slow's pod removed", func() error {
		if n := len(c.jobPods(t, "slow")); n != 0 {
			return fmt.Errorf("%d pods left", n)
		}
		return nil
	})
}
