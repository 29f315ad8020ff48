package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The pod workloads run in their own namespace, through a client that fails over between
// the servers.
const (
	chaosNS   = "chaos"
	steadyApp = "steady" // a Deployment never touched: the pods a killed agent's must be rescheduled from
	testImage = "skiff.local/testimage:latest"
	// podGrace is every workload pod's termination grace period.
	podGrace = 5 * time.Second
)

// podLoad runs the churn workload (Deployments created, scaled up and down, rolled and
// deleted, on a few lanes) and the pod-rate workload (bare pods created at a target rate,
// each deleted after a lifetime).
type podLoad struct {
	cs       kubernetes.Interface
	verbs    *verbStats
	pods     *podTracker
	lanes    int
	rate     float64       // pod-rate pods per second; 0: none
	lifetime time.Duration // of a pod-rate pod
	tolerate int64         // tolerationSeconds of the unreachable/not-ready NoExecute taints
	steady   int32         // replicas of the steady Deployment

	mu      sync.Mutex
	deleted map[string]time.Time // app label of a deleted Deployment, when the delete was acknowledged
}

// podSpec is every workload pod: the test image sleeping (a hollow agent runs nothing, a
// real agent runs it in a container), and a short toleration of an unreachable or
// not-ready node so that a killed agent's pods are evicted in seconds rather than the
// default five minutes.
func (l *podLoad) podSpec() corev1.PodSpec {
	var tols []corev1.Toleration
	for _, k := range []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady} {
		tols = append(tols, corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(l.tolerate)})
	}
	return corev1.PodSpec{
		Containers:                    []corev1.Container{{Name: "main", Image: testImage, Args: []string{"sleep", "100000"}}},
		Tolerations:                   tols,
		TerminationGracePeriodSeconds: ptr.To(int64(podGrace / time.Second)),
	}
}

func (l *podLoad) deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: chaosNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: l.podSpec()},
		},
	}
}

// do runs one API call of the workload, retrying what may not have happened (a timeout, a
// dead server) until it is answered or 30 s pass; done treats an answer such as
// AlreadyExists after a retry as the call having taken effect.
func (l *podLoad) do(ctx context.Context, verb string, call func(context.Context) error, done func(error) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t := time.Now()
		err := call(octx)
		cancel()
		if err == nil || (done != nil && done(err)) {
			l.verbs.record(verb, time.Since(t), nil)
			return nil
		}
		l.verbs.record(verb, 0, err)
		if ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		sleepCtx(ctx, 300*time.Millisecond)
	}
}

// setup makes the namespace and the steady Deployment.
func (l *podLoad) setup(ctx context.Context) error {
	err := l.do(ctx, "namespace create", func(ctx context.Context) error {
		_, err := l.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: chaosNS}}, metav1.CreateOptions{})
		return err
	}, apierrors.IsAlreadyExists)
	if err != nil {
		return fmt.Errorf("bench: namespace %s: %w", chaosNS, err)
	}
	err = l.do(ctx, "deployment create", func(ctx context.Context) error {
		_, err := l.cs.AppsV1().Deployments(chaosNS).Create(ctx, l.deployment(steadyApp, l.steady), metav1.CreateOptions{})
		return err
	}, apierrors.IsAlreadyExists)
	if err != nil {
		return fmt.Errorf("bench: steady deployment: %w", err)
	}
	return nil
}

// waitSteady waits until the steady Deployment's pods are all ready.
func (l *podLoad) waitSteady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if n := l.pods.readyOffNode(steadyApp, ""); n >= int(l.steady) {
			return nil
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return fmt.Errorf("bench: steady deployment: %d of %d pods ready after %v", l.pods.readyOffNode(steadyApp, ""), l.steady, timeout)
}

// churn runs one lane: create a Deployment, scale it up, roll it, scale it down, delete
// it, and again, a few seconds apart, until ctx ends.
func (l *podLoad) churn(ctx context.Context, lane int) {
	rng := rand.New(rand.NewPCG(uint64(lane), 0xc4724))
	deps := l.cs.AppsV1().Deployments(chaosNS)
	pause := func() { sleepCtx(ctx, 2*time.Second+time.Duration(rng.IntN(2000))*time.Millisecond) }
	scale := func(name string, n int32) {
		_ = l.do(ctx, "deployment scale", func(ctx context.Context) error {
			_, err := deps.Patch(ctx, name, types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n), metav1.PatchOptions{})
			return err
		}, nil)
	}
	for gen := 0; ctx.Err() == nil; gen++ {
		name := fmt.Sprintf("churn-%d-%d", lane, gen)
		if err := l.do(ctx, "deployment create", func(ctx context.Context) error {
			_, err := deps.Create(ctx, l.deployment(name, 1+rng.Int32N(2)), metav1.CreateOptions{})
			return err
		}, apierrors.IsAlreadyExists); err != nil {
			continue
		}
		pause()
		scale(name, 3+rng.Int32N(3))
		pause()
		_ = l.do(ctx, "deployment roll", func(ctx context.Context) error {
			_, err := deps.Patch(ctx, name, types.MergePatchType,
				fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{"chaos/rollout":"%d"}}}}}`, rng.Uint32()), metav1.PatchOptions{})
			return err
		}, nil)
		pause()
		scale(name, 1+rng.Int32N(2))
		pause()
		if ctx.Err() != nil {
			return // the last one stays: its convergence is checked
		}
		if err := l.do(ctx, "deployment delete", func(ctx context.Context) error {
			return deps.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		}, apierrors.IsNotFound); err == nil {
			l.mu.Lock()
			l.deleted[name] = time.Now()
			l.mu.Unlock()
		}
	}
}

// podRate creates bare pods at l.rate per second and deletes each after l.lifetime.
func (l *podLoad) podRate(ctx context.Context) {
	if l.rate <= 0 {
		return
	}
	pods := l.cs.CoreV1().Pods(chaosNS)
	type due struct {
		name string
		at   time.Time
	}
	var (
		mu    sync.Mutex
		queue []due
		wg    sync.WaitGroup
	)
	wg.Go(func() { // the deleter
		for ctx.Err() == nil {
			sleepCtx(ctx, 200*time.Millisecond)
			mu.Lock()
			var now []due
			for len(queue) > 0 && time.Now().After(queue[0].at) {
				now = append(now, queue[0])
				queue = queue[1:]
			}
			mu.Unlock()
			for _, d := range now {
				_ = l.do(ctx, "pod delete", func(ctx context.Context) error {
					return pods.Delete(ctx, d.name, metav1.DeleteOptions{})
				}, apierrors.IsNotFound)
			}
		}
	})
	create := make(chan string)
	for range 4 {
		wg.Go(func() {
			for name := range create {
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "rate"}}, Spec: l.podSpec()}
				sent := time.Now()
				var uid types.UID
				err := l.do(ctx, "pod create", func(ctx context.Context) error {
					out, err := pods.Create(ctx, p, metav1.CreateOptions{})
					if err == nil {
						uid = out.UID
					}
					return err
				}, apierrors.IsAlreadyExists)
				if err != nil {
					continue
				}
				if uid != "" {
					l.pods.created(uid, sent)
				}
				mu.Lock()
				queue = append(queue, due{name, time.Now().Add(l.lifetime)})
				mu.Unlock()
			}
		})
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			close(create)
			wg.Wait()
			return
		case <-tick.C:
			select {
			case create <- fmt.Sprintf("rate-%d", i):
			default: // the creators are behind (a fault): this tick is skipped, not queued
			}
		}
	}
}

func (l *podLoad) deletedApps() map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]time.Time, len(l.deleted))
	for k, v := range l.deleted {
		out[k] = v
	}
	return out
}

// DeploymentCheck is result.json's account of the Deployments after the run.
type DeploymentCheck struct {
	Count        int      `json:"count"`
	Converged    bool     `json:"converged"`
	BoundS       float64  `json:"bound_s"`  // after the last fault
	AfterFaultMs float64  `json:"after_ms"` // from the end of the last fault to all converged
	NotConverged []string `json:"not_converged,omitempty"`
}

// notConverged says why a Deployment is not at its desired state: every replica updated,
// ready and available, no old ones left, and the status observed for the latest spec.
func notConverged(d *appsv1.Deployment) string {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		return fmt.Sprintf("status at generation %d of %d", s.ObservedGeneration, d.Generation)
	case s.UpdatedReplicas != want || s.Replicas != want || s.ReadyReplicas != want || s.AvailableReplicas != want:
		return fmt.Sprintf("want %d: %d replicas, %d updated, %d ready, %d available", want, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas)
	}
	return ""
}

// waitConverged polls the Deployments until all have converged or deadline passes.
func (l *podLoad) waitConverged(ctx context.Context, since time.Time, bound time.Duration) DeploymentCheck {
	dc := DeploymentCheck{BoundS: bound.Seconds()}
	deadline := since.Add(bound)
	for {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		list, err := l.cs.AppsV1().Deployments(chaosNS).List(octx, metav1.ListOptions{})
		cancel()
		if err == nil {
			dc.Count, dc.NotConverged = len(list.Items), nil
			for i := range list.Items {
				d := &list.Items[i]
				if d.DeletionTimestamp != nil {
					continue
				}
				if why := notConverged(d); why != "" {
					dc.NotConverged = append(dc.NotConverged, d.Name+": "+why)
				}
			}
			if len(dc.NotConverged) == 0 {
				dc.Converged, dc.AfterFaultMs = true, ms(time.Since(since))
				return dc
			}
		} else {
			dc.NotConverged = []string{"list: " + err.Error()}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			sort.Strings(dc.NotConverged)
			return dc
		}
		sleepCtx(ctx, time.Second)
	}
}

// nodesNotReady names the wanted nodes that are missing or not Ready.
func nodesNotReady(nodes []corev1.Node, want []string) []string {
	ready := map[string]bool{}
	for _, n := range nodes {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = true
			}
		}
	}
	var out []string
	for _, w := range want {
		if !ready[w] {
			out = append(out, w)
		}
	}
	return out
}

// waitNodesReady polls until every agent's Node is Ready, up to timeout; it returns those
// that are not.
func (l *podLoad) waitNodesReady(ctx context.Context, want []string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		list, err := l.cs.CoreV1().Nodes().List(octx, metav1.ListOptions{})
		cancel()
		missing := want
		if err == nil {
			missing = nodesNotReady(list.Items, want)
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return missing
		}
		sleepCtx(ctx, time.Second)
	}
}
