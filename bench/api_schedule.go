package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// nodeFleet is a running node simulator: skiff's hollow-nodes process, or kwok.
type nodeFleet interface {
	Alive() error // nil while it runs
	Stop()
}

// fleetFunc is a nodeFleet from two functions; nil ones do nothing. pids are its processes,
// when it has some (skiff's hollow-nodes), for their memory.
type fleetFunc struct {
	alive func() error
	stop  func()
	pids  []int
}

func (f fleetFunc) Alive() error {
	if f.alive == nil {
		return nil
	}
	return f.alive()
}

func (f fleetFunc) Stop() {
	if f.stop != nil {
		f.stop()
	}
}

// podTimes notes when each pod was first seen, first seen bound and first seen Running.
type podTimes struct {
	mu                      sync.Mutex
	created, bound, running map[types.UID]time.Time
}

func newPodTimes() *podTimes {
	return &podTimes{created: map[types.UID]time.Time{}, bound: map[types.UID]time.Time{}, running: map[types.UID]time.Time{}}
}

func (r *podTimes) observe(p *corev1.Pod) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.created[p.UID]; !ok {
		r.created[p.UID] = now
	}
	if _, ok := r.bound[p.UID]; !ok && p.Spec.NodeName != "" {
		r.bound[p.UID] = now
	}
	if _, ok := r.running[p.UID]; !ok && p.Status.Phase == corev1.PodRunning {
		r.running[p.UID] = now
	}
}

func (r *podTimes) counts() (created, bound, running int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.created), len(r.bound), len(r.running)
}

// scheduleRow turns the times of one transition (bound, or Running) into a row: ops/s is
// pods that made it over the time from the Deployments' creation (start) to the last one,
// so it includes the controllers creating the pods; the latencies are per pod, from its
// creation to the transition, both as seen by one watch. Fewer than want pods is an error
// that keeps the figures of those that made it.
func scheduleRow(system, step, workload, variant string, nodes, want int, start time.Time, created, done map[types.UID]time.Time, waited time.Duration) APIResult {
	row := APIResult{System: system, Step: step, Workload: workload, Clients: 1, Variant: variant, Nodes: nodes, Pods: want, Ops: len(done)}
	var last time.Time
	lat := make([]time.Duration, 0, len(done))
	for uid, t := range done {
		if t.After(last) {
			last = t
		}
		if c, ok := created[uid]; ok {
			lat = append(lat, t.Sub(c))
		}
	}
	if len(done) > 0 {
		s := Summarize(lat, 0, last.Sub(start))
		s.OpsPerSec = float64(len(done)) / last.Sub(start).Seconds()
		r := apiRow(system, step, workload, 1, s, true)
		row.OpsPerSec, row.P50, row.P99, row.P999 = r.OpsPerSec, r.P50, r.P99, r.P999
	}
	row.Note = fmt.Sprintf("%d nodes, %d pods by Deployments; ops/s from the Deployments' creation, latency from each pod's", nodes, want)
	if len(done) < want {
		row.Errors = want - len(done)
		row.Error = fmt.Sprintf("%d of %d pods after %s", len(done), want, waited.Round(time.Second))
	}
	return row
}

// scheduleSpec is one scheduling run: pods through Deployments of 1,000 replicas at most,
// in their own namespace, onto nodes matching nodeSelector (none: any).
type scheduleSpec struct {
	system, step, variant, ns string
	nodes, pods               int
	nodeSelector              map[string]string
	timeout                   time.Duration
}

// runSchedule creates the Deployments at once and waits until every pod is bound and
// Running or the timeout passes; it returns the schedule-bound and schedule-running rows.
func runSchedule(ctx context.Context, client kubernetes.Interface, sp scheduleSpec, say func(string, ...any)) ([]APIResult, error) {
	if err := ensureNamespace(ctx, client, sp.ns); err != nil {
		return nil, err
	}
	rec := newPodTimes()
	_, stopInformer, err := watchPodTimes(client, sp.ns, rec)
	if err != nil {
		return nil, err
	}
	defer stopInformer()
	say("%s: %d pods through %d Deployments onto %d %s", sp.system, sp.pods, deploymentsFor(sp.pods), sp.nodes, sp.variant)
	start := time.Now()
	if err := createDeployments(ctx, client, sp.ns, "sched", sp.pods, sp.nodeSelector); err != nil {
		return nil, err
	}
	deadline := time.NewTimer(sp.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var stopped error
wait:
	for {
		if _, b, r := rec.counts(); b >= sp.pods && r >= sp.pods {
			break
		}
		select {
		case <-ctx.Done():
			stopped = context.Cause(ctx)
			break wait
		case <-deadline.C:
			break wait
		case <-tick.C:
			c, b, r := rec.counts() // now, not as of the previous tick
			say("%s: %5.0fs: %d created, %d bound, %d Running", sp.system, time.Since(start).Seconds(), c, b, r)
		}
	}
	waited := time.Since(start)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rows := []APIResult{
		scheduleRow(sp.system, sp.step, "schedule-bound", sp.variant, sp.nodes, sp.pods, start, rec.created, rec.bound, waited),
		scheduleRow(sp.system, sp.step, "schedule-running", sp.variant, sp.nodes, sp.pods, start, rec.created, rec.running, waited),
	}
	return rows, stopped
}

// watchPodTimes starts a pod informer on ns that feeds rec, and waits for its first list.
// The informer's store holds the namespace's pods as last seen; stop ends it.
func watchPodTimes(client kubernetes.Interface, ns string, rec *podTimes) (inf cache.SharedIndexInformer, stop func(), err error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf = factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { rec.observe(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { rec.observe(obj.(*corev1.Pod)) },
	}); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	stop = func() { close(done); factory.Shutdown() }
	factory.Start(done)
	if !cache.WaitForCacheSync(done, inf.HasSynced) {
		stop()
		return nil, nil, fmt.Errorf("pod informer in %s did not sync", ns)
	}
	return inf, stop, nil
}

// deploymentsFor is how many Deployments carry pods: 1,000 replicas at most each.
func deploymentsFor(pods int) int { return max(1, (pods+999)/1000) }

// createDeployments creates pods replicas in ns through deploymentsFor(pods) Deployments
// named <prefix>-<i>, onto nodes matching nodeSelector (none: any).
func createDeployments(ctx context.Context, client kubernetes.Interface, ns, prefix string, pods int, nodeSelector map[string]string) error {
	n := deploymentsFor(pods)
	for i := range n {
		replicas := int32(pods / n)
		if i < pods%n {
			replicas++
		}
		d := benchDeployment(fmt.Sprintf("%s-%d", prefix, i), replicas)
		d.Spec.Template.Spec.NodeSelector = nodeSelector
		if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create Deployment: %w", err)
		}
	}
	return nil
}
