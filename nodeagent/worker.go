package nodeagent

import (
	"context"
	"errors"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// podWorker owns one pod: only its goroutine starts, stops or reports the
// pod's containers, so pods never wait on each other.
type podWorker struct {
	m        *podManager
	a        *Agent
	uid      types.UID
	ns, name string
	wakeCh   chan struct{}

	// Owned by the run goroutine.
	last    *corev1.Pod
	written *corev1.Pod // as the API answered this worker's last status patch
	sandbox *sandbox
	watched map[string]bool // container IDs with an exit watcher
	// waiting holds why a container could not start (image pull, config)
	// until it starts.
	waiting map[string]corev1.ContainerStateWaiting
	retryAt map[string]time.Time
	probes  *podProbes
	deleted bool // the API object was deleted by us, after termination
	volSync time.Time
	// woken is when the worker was created, for the start steps' timings in the log.
	woken time.Time
	// steps times this sync's slow steps (sandbox, image, spec, runtime start, status
	// write), logged with each container start: where a pod's startup time goes.
	steps stepTimes

	wg sync.WaitGroup // goroutines the worker started
}

// stepTimes are the durations of one sync's steps.
type stepTimes struct {
	sandbox, image, spec, start time.Duration
}

func newPodWorker(m *podManager, uid types.UID, ns, name string) *podWorker {
	return &podWorker{
		m: m, a: m.a, uid: uid, ns: ns, name: name,
		wakeCh:  make(chan struct{}, 1),
		watched: map[string]bool{},
		waiting: map[string]corev1.ContainerStateWaiting{},
		retryAt: map[string]time.Time{},
		woken:   time.Now(),
	}
}

// poke asks the worker to sync soon; pokes coalesce.
func (w *podWorker) poke() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

// run syncs the pod on every poke and when the previous sync asked to be
// called again, until the pod is gone and cleaned up or ctx ends (agent
// shutdown: containers are left running for the next agent).
func (w *podWorker) run(ctx context.Context) {
	wctx, cancel := context.WithCancel(ctx)
	w.probes = newPodProbes(w)
	defer func() {
		cancel()
		w.wg.Wait()
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wakeCh:
		case <-timer.C:
		}
		after, done := w.sync(wctx)
		if done && w.m.workerDone(w) {
			return
		}
		timer.Stop()
		if after > 0 {
			timer.Reset(after)
		}
	}
}

// sync does one round of work on the pod and says when to come back.
func (w *podWorker) sync(ctx context.Context) (after time.Duration, done bool) {
	pod := w.m.desired(w.uid, w.ns, w.name)
	if pod == nil {
		if !w.m.cacheSynced() {
			return time.Second, false
		}
		grace := 2 * time.Second
		if w.last != nil && w.last.DeletionGracePeriodSeconds != nil && !w.deleted {
			grace = time.Duration(*w.last.DeletionGracePeriodSeconds) * time.Second
		}
		w.probes.stopAll()
		if err := w.a.cleanupPod(ctx, w.uid, grace); err != nil {
			w.a.log.Warn("cleaning up pod", "pod", w.ns+"/"+w.name, "err", err)
			return 2 * time.Second, false
		}
		return 0, true
	}
	w.last = pod
	list, err := w.a.cfg.Runtime.List(ctx)
	if err != nil {
		w.a.log.Warn("listing containers", "err", err)
		return 2 * time.Second, false
	}
	recs := groupRecords(w.uid, list)
	w.watchExits(ctx, recs)

	if pod.DeletionTimestamp != nil {
		return w.terminate(ctx, pod, recs)
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return w.finished(ctx, pod, recs)
	}
	return w.syncRunning(ctx, pod, recs)
}

// syncRunning brings a live pod's containers to what its spec asks.
func (w *podWorker) syncRunning(ctx context.Context, pod *corev1.Pod, recs podRecords) (time.Duration, bool) {
	w.steps = stepTimes{}
	t0 := time.Now()
	err := w.ensureSandbox(ctx, pod)
	w.steps.sandbox = time.Since(t0)
	if err != nil {
		w.a.log.Warn("preparing pod sandbox", "pod", w.ns+"/"+w.name, "err", err)
		w.updateStatus(ctx, pod, recs, plan{waiting: map[string]corev1.ContainerStateWaiting{}}, false)
		return 2 * time.Second, false
	}
	now := time.Now()
	p := decide(pod, recs, w.probes, w.m.backoff, now)
	for _, id := range p.removes {
		w.removeContainer(ctx, id)
	}
	for _, k := range p.kills {
		w.a.log.Info("killing container", "pod", w.ns+"/"+w.name, "container", k.id, "reason", k.reason)
		w.stopContainer(ctx, pod, k.id, nil)
	}
	for _, s := range p.starts {
		if err := w.startContainer(ctx, pod, s); err != nil {
			if !errors.Is(err, errWaiting) {
				w.a.log.Info("container did not start", "pod", w.ns+"/"+w.name, "container", s.c.Name, "err", err)
			}
			p.wakeIn(w.retryAfter(pod, s.c.Name))
		}
	}
	if len(p.kills)+len(p.starts)+len(p.removes) > 0 {
		// Report what the changes produced, not what preceded them.
		list, err := w.a.cfg.Runtime.List(ctx)
		if err == nil {
			recs = groupRecords(w.uid, list)
			w.watchExits(ctx, recs)
		}
		p2 := decide(pod, recs, w.probes, w.m.backoff, time.Now())
		p2.requeue = p.requeue
		p2.starts = nil
		p = p2
	}
	for name, wt := range w.waiting {
		if r := recs.latest(name); r == nil || !r.running() {
			p.waiting[name] = wt
		}
	}
	w.probes.sync(ctx, pod, recs)
	w.updateStatus(ctx, pod, recs, p, false)
	if d := w.refreshVolumesIn(ctx, pod); d > 0 {
		p.wakeIn(d)
	}
	return p.requeue, false
}

// retryAfter is how long a container that failed to start (pull or config
// error) waits before the next try.
func (w *podWorker) retryAfter(pod *corev1.Pod, name string) time.Duration {
	return max(time.Until(w.retryAt[name]), 50*time.Millisecond)
}

// finished handles a pod in a terminal phase: nothing restarts; anything
// still running (a status written by someone else) is stopped.
func (w *podWorker) finished(ctx context.Context, pod *corev1.Pod, recs podRecords) (time.Duration, bool) {
	w.probes.stopAll()
	for _, rs := range recs {
		for _, r := range rs {
			if r.running() {
				w.stopContainer(ctx, pod, r.ID, nil)
			}
		}
	}
	if err := w.a.releaseSandbox(ctx, w.uid); err != nil {
		w.a.log.Warn("releasing pod network", "pod", w.ns+"/"+w.name, "err", err)
	}
	return 0, false
}

// terminate stops a pod that is being deleted, in Kubernetes' order (all
// containers get SIGTERM, SIGKILL after the grace period), reports their
// final state, then deletes the API object with grace 0 as the kubelet
// does, which lets the apiserver remove it.
func (w *podWorker) terminate(ctx context.Context, pod *corev1.Pod, recs podRecords) (time.Duration, bool) {
	w.probes.stopAll()
	grace := time.Duration(30) * time.Second
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	var wg sync.WaitGroup
	for _, rs := range recs {
		for _, r := range rs {
			if r.running() {
				wg.Add(1)
				go func(id string) {
					defer wg.Done()
					w.stopContainer(ctx, pod, id, &grace)
				}(r.ID)
			}
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return 0, false
	}
	list, err := w.a.cfg.Runtime.List(ctx)
	if err == nil {
		recs = groupRecords(w.uid, list)
	}
	p := plan{waiting: map[string]corev1.ContainerStateWaiting{}, initDone: initDone(pod, recs)}
	w.updateStatus(ctx, pod, recs, p, true)
	if isStaticPod(pod) {
		return 0, false // its manifest's removal ends it
	}
	err = w.a.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Conflict: the UID precondition failed, so our pod is gone.
		w.deleted = true
		return time.Second, false
	default:
		w.a.log.Warn("deleting terminated pod", "pod", w.ns+"/"+w.name, "err", err)
		return 2 * time.Second, false
	}
}

// stopContainer runs the preStop hook, then stops the container with the
// pod's grace period (or the given one).
func (w *podWorker) stopContainer(ctx context.Context, pod *corev1.Pod, id string, grace *time.Duration) {
	g := 30 * time.Second
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if grace != nil {
		g = *grace
	}
	start := time.Now()
	if _, name, _, ok := parseContainerID(id); ok && g > 0 {
		if c := findContainer(pod, name); c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			hctx, cancel := context.WithTimeout(ctx, g)
			if err := w.runHandler(hctx, pod, id, c.Lifecycle.PreStop); err != nil {
				w.a.log.Info("preStop hook failed", "container", id, "err", err)
			}
			cancel()
		}
	}
	// The hook's time counts against the grace period, as in Kubernetes,
	// with at least two seconds left for SIGTERM; zero means SIGKILL now.
	if g > 0 {
		g = max(g-time.Since(start), 2*time.Second)
	}
	if _, err := w.a.cfg.Runtime.Stop(ctx, id, g); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		w.a.log.Warn("stopping container", "container", id, "err", err)
	}
}

func (w *podWorker) removeContainer(ctx context.Context, id string) {
	if err := w.a.cfg.Runtime.Remove(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		w.a.log.Warn("removing container", "container", id, "err", err)
		return
	}
	w.a.logs.forget(id)
	delete(w.watched, id)
}

// watchExits starts, for each running container without one, a goroutine
// that wakes the worker when the container exits; it also makes sure the
// container's output is being collected.
func (w *podWorker) watchExits(ctx context.Context, recs podRecords) {
	for _, rs := range recs {
		for _, r := range rs {
			w.a.logs.collect(w.ns, w.name, w.uid, r)
			if !r.running() || w.watched[r.ID] {
				continue
			}
			w.watched[r.ID] = true
			w.wg.Add(1)
			go func(id string) {
				defer w.wg.Done()
				if _, err := w.a.cfg.Runtime.Wait(ctx, id); err == nil {
					w.poke()
				}
			}(r.ID)
		}
	}
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}
