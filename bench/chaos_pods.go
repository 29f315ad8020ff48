package bench

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// podTracker follows every pod of the chaos namespace through a watch (an informer that
// relists after a broken watch, so no final state is missed) and keeps what the pod checks
// need: the node each pod was bound to, and when it was first seen, seen running and ready,
// asked to terminate and gone.
type podTracker struct {
	mu   sync.Mutex
	t0   time.Time
	pods map[types.UID]*podRecord
	// doubleBound: a pod seen bound to one node and later to another.
	doubleBound []string
}

type podRecord struct {
	name      string
	app       string // its app label
	node      string // the node it was first bound to
	firstSeen time.Time
	created   time.Time // when the workload asked for it (pod-rate pods), else zero
	bound     time.Time // first seen bound to a node
	ready     time.Time // first seen Running and Ready
	readyNow  bool
	deleting  time.Time // first seen with a deletionTimestamp
	gone      time.Time // DELETE seen
}

func newPodTracker(t0 time.Time) *podTracker {
	return &podTracker{t0: t0, pods: map[types.UID]*podRecord{}}
}

// observe records one state of a pod; deleted is true for a DELETE.
func (pt *podTracker) observe(p *corev1.Pod, deleted bool, now time.Time) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	r := pt.pods[p.UID]
	if r == nil {
		r = &podRecord{firstSeen: now}
		pt.pods[p.UID] = r
	}
	if r.name == "" {
		r.name, r.app = p.Name, p.Labels["app"]
	}
	if n := p.Spec.NodeName; n != "" {
		switch {
		case r.node == "":
			r.node, r.bound = n, now
		case r.node != n:
			pt.doubleBound = append(pt.doubleBound, fmt.Sprintf("%s (uid %s) bound to %s, then to %s", p.Name, p.UID, r.node, n))
			r.node = n
		}
	}
	r.readyNow = podReady(p) && p.DeletionTimestamp == nil && !deleted
	if r.readyNow && r.ready.IsZero() {
		r.ready = now
	}
	if p.DeletionTimestamp != nil && r.deleting.IsZero() {
		r.deleting = now
	}
	if deleted {
		r.gone = now
		if r.deleting.IsZero() {
			r.deleting = now
		}
	}
}

// created notes when the workload sent the create of a pod, for its startup latency.
func (pt *podTracker) created(uid types.UID, at time.Time) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if r := pt.pods[uid]; r != nil {
		r.created = at
		return
	}
	pt.pods[uid] = &podRecord{created: at, firstSeen: at}
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyOffNode counts the pods of app that are ready now on a node other than node.
func (pt *podTracker) readyOffNode(app, node string) int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	n := 0
	for _, r := range pt.pods {
		if r.app == app && r.readyNow && r.gone.IsZero() && r.deleting.IsZero() && r.node != node {
			n++
		}
	}
	return n
}

// busiestNode is the node with the most ready pods of app, and how many.
func (pt *podTracker) busiestNode(app string, among []string) (string, int) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	count := map[string]int{}
	for _, r := range pt.pods {
		if r.app == app && r.readyNow && r.gone.IsZero() && r.deleting.IsZero() && r.node != "" {
			count[r.node]++
		}
	}
	best, n := "", -1
	for _, node := range among {
		if count[node] > n {
			best, n = node, count[node]
		}
	}
	return best, n
}

// PodCheck is result.json's account of the pods the workloads made.
type PodCheck struct {
	Seen        int      `json:"pods_seen"`
	DoubleBound []string `json:"bound_to_two_nodes,omitempty"`
	// LeftAfterDeletion: pods asked to terminate (or whose Deployment was deleted) still
	// present, on a live node, longer than the bound after the run.
	LeftAfterDeletion []string `json:"left_after_deletion,omitempty"`
	StartupP50Ms      float64  `json:"pod_startup_p50_ms"` // pod-rate pods: create sent to seen ready
	StartupP99Ms      float64  `json:"pod_startup_p99_ms"`
	StartupP999Ms     float64  `json:"pod_startup_p999_ms"`
	ScheduleP50Ms     float64  `json:"pod_schedule_p50_ms"` // of that, create sent to seen bound
	ScheduleP99Ms     float64  `json:"pod_schedule_p99_ms"`
	NeverReady        int      `json:"pod_rate_never_ready"` // pod-rate pods never seen ready
}

// check reports bindings to two nodes, pods that stayed past bound (measured at now) after
// their deletion or their Deployment's (deletedApps: app label to when), and pod-rate
// startup latency.
func (pt *podTracker) check(now time.Time, bound time.Duration, deletedApps map[string]time.Time) PodCheck {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pc := PodCheck{Seen: len(pt.pods), DoubleBound: slices.Clone(pt.doubleBound)}
	var startup, sched []time.Duration
	for uid, r := range pt.pods {
		if !r.deleting.IsZero() && r.gone.IsZero() && now.Sub(r.deleting) > bound {
			pc.LeftAfterDeletion = append(pc.LeftAfterDeletion, fmt.Sprintf("%s (uid %s) on %q, terminating for %.0fs", r.name, uid, r.node, now.Sub(r.deleting).Seconds()))
		} else if at, ok := deletedApps[r.app]; ok && r.gone.IsZero() && r.deleting.IsZero() && now.Sub(at) > bound {
			pc.LeftAfterDeletion = append(pc.LeftAfterDeletion, fmt.Sprintf("%s (uid %s) on %q, its Deployment deleted %.0fs ago", r.name, uid, r.node, now.Sub(at).Seconds()))
		}
		if !r.created.IsZero() {
			if r.ready.IsZero() {
				if r.deleting.IsZero() {
					pc.NeverReady++
				}
			} else {
				startup = append(startup, r.ready.Sub(r.created))
			}
			if !r.bound.IsZero() {
				sched = append(sched, r.bound.Sub(r.created))
			}
		}
	}
	sort.Strings(pc.LeftAfterDeletion)
	pc.StartupP50Ms, pc.StartupP99Ms, pc.StartupP999Ms = ms(percentile(startup, 0.5)), ms(percentile(startup, 0.99)), ms(percentile(startup, 0.999))
	pc.ScheduleP50Ms, pc.ScheduleP99Ms = ms(percentile(sched, 0.5)), ms(percentile(sched, 0.99))
	return pc
}

// seen is how many pods have been seen.
func (pt *podTracker) seen() int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return len(pt.pods)
}

// terminating lists the pods asked to terminate and not gone yet.
func (pt *podTracker) terminating() int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	n := 0
	for _, r := range pt.pods {
		if !r.deleting.IsZero() && r.gone.IsZero() {
			n++
		}
	}
	return n
}

// run watches the namespace's pods until ctx ends. Each watch is cut after 20 s (client
// side too: a partitioned server would otherwise hold it silent), and resumed from where it
// was through the failover client.
func (pt *podTracker) run(ctx context.Context, cs kubernetes.Interface, ns string) {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return cs.CoreV1().Pods(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			secs := int64(20)
			o.TimeoutSeconds = &secs
			wctx, cancel := context.WithTimeout(ctx, 25*time.Second)
			w, err := cs.CoreV1().Pods(ns).Watch(wctx, o)
			if err != nil {
				cancel()
				return nil, err
			}
			return &cancelWatch{Interface: w, cancel: cancel}, nil
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pt.observeObj(obj, false) },
		UpdateFunc: func(_, obj any) { pt.observeObj(obj, false) },
		DeleteFunc: func(obj any) { pt.observeObj(obj, true) },
	})
	inf.RunWithContext(ctx)
}

func (pt *podTracker) observeObj(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok {
		pt.observe(p, deleted, time.Now())
	}
}

// cancelWatch releases the watch's context when the watch is stopped.
type cancelWatch struct {
	watch.Interface
	cancel context.CancelFunc
}

func (w *cancelWatch) Stop() {
	w.Interface.Stop()
	w.cancel()
}

// fates is, per pod seen, the node it was bound to and when it was first seen asked to
// terminate, for the real agents' container checks (present is left for the caller).
func (pt *podTracker) fates() map[types.UID]podFate {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	out := make(map[types.UID]podFate, len(pt.pods))
	for uid, r := range pt.pods {
		out[uid] = podFate{node: r.node, deleting: r.deleting}
	}
	return out
}
