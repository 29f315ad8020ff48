package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/cluster"
)

// SchedulerOptions configure RunScheduler (`skiff bench scheduler`).
type SchedulerOptions struct {
	Exe     string // the skiff binary the servers and the hollow nodes run
	Servers int    // default 3; 1 is a control plane that no leader change disturbs
	Nodes   int    // hollow nodes, in hollow-nodes processes of at most hollowNodesPerProcess
	Pods    int    // pods, created at once
	// Via is how the pods are made: "deployments" (the default: o.Deployments of them,
	// the ReplicaSet controller creates the pods) or "pods" (bare pods from Writers
	// parallel writers spread over the servers, as scheduler_perf's createPods makes them
	// through the API).
	Via         string
	Writers     int // default 32
	Deployments int
	Timeout     time.Duration // for every pod to be bound
	Dir         string        // where the temporary cluster directory is made
	ProfileDir  string        // if set, CPU profiles of every server while pods are bound, heap profiles once Running
	// RaftHeartbeat, if set, restarts the servers with --raft-heartbeat-timeout: on a
	// machine starved of CPU a short one costs a leader change every few seconds, and each
	// one restarts the scheduler.
	RaftHeartbeat time.Duration
	Command       string // recorded in the report
	Progress      io.Writer
}

// SchedulerResult is the outcome of one scheduler benchmark.
type SchedulerResult struct {
	Command     string  `json:"command"`
	Servers     int     `json:"servers"`
	Elections   int     `json:"leaderChanges"` // Raft terms that began while pods were bound
	Nodes       int     `json:"nodes"`
	Pods        int     `json:"pods"`
	Via         string  `json:"via,omitempty"`     // "deployments" or "pods"
	Writers     int     `json:"writers,omitempty"` // of the pods, with Via "pods"
	Deployments int     `json:"deployments"`
	Bound       int     `json:"bound"`
	CreatedIn   float64 `json:"createdInSeconds"` // first create call to last pod seen created
	BoundIn     float64 `json:"boundInSeconds"`   // first pod seen created to last pod seen bound
	// PodsPerSecond is Bound/BoundIn (the overall figure); EndToEndPerSecond counts from
	// the first create call (of a Deployment or a pod).
	PodsPerSecond     float64 `json:"podsBoundPerSecond"`
	EndToEndPerSecond float64 `json:"endToEndPodsPerSecond"`
	PeakPerSecond     int     `json:"peakBoundInOneSecond"`
	// CPU is what each process used while the pods were bound (first create call to last
	// pod bound, from /proc), per bound pod: unlike the rates it does not depend on how
	// much of the machine other work took.
	CPU []ProcessCPU `json:"cpuWhileBinding,omitempty"`
	// Requests is the API requests the servers answered while the pods were bound, per
	// bound pod, by "VERB resource[/subresource]" (from their /metrics; those at least 0.05).
	Requests map[string]float64 `json:"apiRequestsPerBoundPod,omitempty"`
	// Throughput is scheduler_perf's SchedulingThroughput: pods bound per second, sampled
	// every second while pods are being bound (nil when fewer than two samples were taken).
	Throughput *SchedulingThroughput `json:"schedulingThroughput,omitempty"`
	// Create-to-bound latency, from the watch event of the pod's creation to that of its
	// binding (both seen by the same watch, so its lag cancels out).
	P50Ms float64 `json:"p50CreateToBoundMs"`
	P90Ms float64 `json:"p90CreateToBoundMs"`
	P99Ms float64 `json:"p99CreateToBoundMs"`
	MaxMs float64 `json:"maxCreateToBoundMs"`
}

func (o *SchedulerOptions) defaults() {
	if o.Servers == 0 {
		o.Servers = 3
	}
	if o.Nodes == 0 {
		o.Nodes = 1000
	}
	if o.Pods == 0 {
		o.Pods = 10000
	}
	if o.Deployments == 0 {
		o.Deployments = 10
	}
	if o.Via == "" {
		o.Via = scalePodsViaDep
	}
	if o.Writers <= 0 {
		o.Writers = 32
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// RunScheduler starts three servers as processes and o.Nodes hollow nodes (startHollowNodes),
// waits for every node to be Ready, creates o.Pods pods at once (through o.Deployments
// Deployments, or directly), and measures how fast the scheduler binds them. Everything it started is
// stopped, and its data removed, before it returns. When not every pod is bound within
// o.Timeout it returns the partial result with an error.
func RunScheduler(ctx context.Context, o SchedulerOptions) (*SchedulerResult, error) {
	o.defaults()
	if o.Via != scalePodsViaDep && o.Via != scalePodsDirect {
		return nil, fmt.Errorf("bench scheduler: --via %q: deployments or pods", o.Via)
	}
	say := func(format string, a ...any) { fmt.Fprintf(o.Progress, "scheduler: "+format+"\n", a...) }
	dir, cleanup, err := clusterDir(o.Dir, "skiff-schedbench-", say)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	say("starting %d servers in %s", o.Servers, dir)
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: o.Servers, Agents: 0, Binary: o.Exe,
		Progress: prefixed(o.Progress, "scheduler: up: ")})
	if err != nil {
		return nil, fmt.Errorf("bench: cluster up: %w", err)
	}
	if o.RaftHeartbeat > 0 {
		say("restarting the servers with --raft-heartbeat-timeout %s", o.RaftHeartbeat)
		for i := range lc.Processes {
			p := &lc.Processes[i]
			if p.Role != "server" {
				continue
			}
			cluster.StopProcess(p.PID, 10*time.Second)
			p.Args = append(p.Args, "--raft-heartbeat-timeout", o.RaftHeartbeat.String())
		}
		for i := range lc.Processes {
			if p := &lc.Processes[i]; p.Role == "server" {
				if err := cluster.StartProcess(lc, p); err != nil {
					return nil, err
				}
				defer cluster.StopProcess(p.PID, 10*time.Second) // cluster.json knows the old pid
			}
		}
		for wait := time.Now(); ; time.Sleep(time.Second) {
			var srv []cluster.Process
			for _, p := range lc.Processes {
				if p.Role == "server" {
					srv = append(srv, p)
				}
			}
			if st := serverStatus(ctx, lc, srv); st.Leader != "" {
				break
			}
			if time.Since(wait) > time.Minute {
				return nil, fmt.Errorf("bench: the restarted servers do not answer")
			}
		}
	}
	var servers []cluster.Process
	for _, p := range lc.Processes {
		if p.Role == "server" {
			servers = append(servers, p)
		}
	}
	hollow, err := startHollowNodes(lc, o.Nodes)
	if err != nil {
		return nil, err
	}
	defer stopHollowNodes(hollow) // before Down, which knows only the servers
	say("started %d hollow nodes in %d process(es) (first pid %d), log %s", o.Nodes, len(hollow), hollow[0].PID, hollow[0].LogFile)
	rc, err := cluster.RestConfig(lc.Kubeconfig, servers[0].Name)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	if err := waitNodesReady(ctx, client, "", o.Nodes, 5*time.Minute, say); err != nil {
		return nil, err
	}
	termBefore := maxTerm(ctx, lc, servers)

	const ns = "schedbench"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	rec := newBindRecorder()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { rec.observe(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { rec.observe(obj.(*corev1.Pod)) },
	}); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	cache.WaitForCacheSync(stop, inf.HasSynced)

	var waitProfiles func()
	if o.ProfileDir != "" {
		waitProfiles = profileServers(ctx, lc, servers, o.ProfileDir, "scheduler", fmt.Sprintf("profile?seconds=%d", 20), say)
	}
	cctx, stopCreating := context.WithCancel(ctx)
	var creating sync.WaitGroup
	defer func() { stopCreating(); creating.Wait() }()
	createErr := make(chan error, 1)
	var writers []kubernetes.Interface
	if o.Via == scalePodsDirect {
		var cfgs []*rest.Config
		for _, p := range servers {
			c, err := cluster.RestConfig(lc.Kubeconfig, p.Name)
			if err != nil {
				return nil, err
			}
			cfgs = append(cfgs, c)
		}
		if writers, err = apiClients(cfgs, len(cfgs)); err != nil {
			return nil, err
		}
	}
	sampler := &throughputSampler{}
	var cpuNames []string
	var cpuPIDs []int
	for _, p := range append(hollow, servers...) {
		cpuNames, cpuPIDs = append(cpuNames, p.Name), append(cpuPIDs, p.PID)
	}
	metricsBefore := scrapeServers(ctx, lc, servers)
	cpuBefore := cpuTicks(cpuPIDs)
	start := time.Now()
	switch o.Via {
	case scalePodsViaDep:
		say("creating %d pods through %d Deployments", o.Pods, o.Deployments)
		for i := range o.Deployments {
			replicas := int32(o.Pods / o.Deployments)
			if i < o.Pods%o.Deployments {
				replicas++
			}
			if _, err := client.AppsV1().Deployments(ns).Create(ctx, benchDeployment(fmt.Sprintf("load-%d", i), replicas), metav1.CreateOptions{}); err != nil {
				return nil, err
			}
		}
	case scalePodsDirect:
		say("creating %d pods directly, %d writers over the %d servers", o.Pods, o.Writers, len(writers))
		creating.Go(func() {
			if err := createPodsWith(cctx, writers, ns, o.Pods, o.Writers, benchPods("load"), say); err != nil && cctx.Err() == nil {
				createErr <- err
			}
		})
	}
	deadline := time.After(o.Timeout)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	// scheduler_perf samples its informer's count of scheduled pods every second.
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	lastBound := 0
	var timedOut error
wait:
	for {
		_, bound := rec.counts()
		if bound >= o.Pods {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-createErr:
			return nil, err
		case <-deadline:
			timedOut = fmt.Errorf("bench: %d of %d pods bound after %s", bound, o.Pods, o.Timeout)
			break wait
		case now := <-sample.C:
			_, bound := rec.counts() // at the sample's time, not as of the loop's last turn
			sampler.observe(now, bound)
		case <-tick.C:
			created, bound := rec.counts()
			say("%5.1fs: %d created, %d bound (%d/s)", time.Since(start).Seconds(), created, bound, (bound-lastBound)/2)
			lastBound = bound
		}
	}
	cpuAfter := cpuTicks(cpuPIDs)
	requests := requestsPerPod(metricsBefore, scrapeServers(ctx, lc, servers), rec)
	leader := serverStatus(ctx, lc, servers).Leader
	var cpu []ProcessCPU
	for i, name := range cpuNames {
		c := ProcessCPU{Name: name, Leader: name == leader, Seconds: float64(cpuAfter[i]-min(cpuBefore[i], cpuAfter[i])) / clkTck}
		if _, bound := rec.counts(); bound > 0 {
			c.MsPerPod = 1000 * c.Seconds / float64(bound)
		}
		cpu = append(cpu, c)
	}
	if waitProfiles != nil {
		waitProfiles()
		// The heap once every pod is Running and their status writes are over (after a GC):
		// what the leader's informers hold, not the requests in flight.
		for settle := time.Now(); rec.runningCount() < o.Pods && time.Since(settle) < 2*time.Minute; {
			time.Sleep(time.Second)
		}
		say("%d pods Running", rec.runningCount())
		time.Sleep(10 * time.Second)
		say("leader %s", serverStatus(ctx, lc, servers).Leader)
		profileServers(ctx, lc, servers, o.ProfileDir, "scheduler-heap", "heap?gc=1", say)()
		for _, p := range servers {
			if rss, peak, err := procMemMB(p.PID); err == nil {
				say("%s: VmRSS %.0f MB, VmHWM %.0f MB", p.Name, rss, peak)
			}
		}
	}
	res := rec.result(start)
	res.Command, res.Servers, res.Nodes, res.Pods, res.Via, res.Deployments = o.Command, o.Servers, o.Nodes, o.Pods, o.Via, o.Deployments
	if o.Via == scalePodsDirect {
		res.Deployments, res.Writers = 0, o.Writers
	}
	res.Throughput = sampler.summary()
	res.CPU, res.Requests = cpu, requests
	res.Elections = max(0, maxTerm(ctx, lc, servers)-termBefore)
	// A run that timed out still reports what it measured, with the error.
	return res, timedOut
}

func benchDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}},
			},
		},
	}
}

// ProcessCPU is one process's user+system CPU over the binding.
type ProcessCPU struct {
	Name     string  `json:"name"`
	Leader   bool    `json:"leader,omitempty"`
	Seconds  float64 `json:"seconds"`
	MsPerPod float64 `json:"msPerBoundPod"`
}

// scrapeServers reads each server's /metrics (nil for one that does not answer).
func scrapeServers(ctx context.Context, lc *cluster.LocalCluster, servers []cluster.Process) []*apiMetrics {
	out := make([]*apiMetrics, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			rc, err := cluster.RestConfig(lc.Kubeconfig, s.Name)
			if err != nil {
				return
			}
			hc, err := rest.HTTPClientFor(rc)
			if err != nil {
				return
			}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			out[i], _ = scrapeAPIMetrics(sctx, hc, s.APIURL+"/metrics")
		})
	}
	wg.Wait()
	return out
}

// requestsPerPod is how many requests of each verb and resource the servers answered
// between the two scrapes, per bound pod; nil when a server did not answer either time.
func requestsPerPod(before, after []*apiMetrics, rec *bindRecorder) map[string]float64 {
	_, bound := rec.counts()
	if bound == 0 {
		return nil
	}
	out := map[string]float64{}
	for i := range after {
		if before[i] == nil || after[i] == nil {
			return nil
		}
		for series, h := range after[i].Latency {
			if n := h.Count - before[i].Latency[series].Count; n > 0 {
				out[series.Verb+" "+series.Resource] += n / float64(bound)
			}
		}
	}
	maps.DeleteFunc(out, func(_ string, v float64) bool { return v < 0.05 })
	return out
}

// cpuTicks reads the CPU ticks used so far by each process (0 for one that is gone).
func cpuTicks(pids []int) []uint64 {
	out := make([]uint64, len(pids))
	for i, pid := range pids {
		out[i], _, _ = procUsage(pid)
	}
	return out
}

// benchPods makes the i-th bare pod of a direct run: benchDeployment's pod template (the
// same requests), named <app>-<i>.
func benchPods(app string) func(i int) *corev1.Pod {
	tmpl := benchDeployment(app, 1).Spec.Template
	return func(i int) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%06d", app, i), Labels: tmpl.Labels}, Spec: *tmpl.Spec.DeepCopy()}
	}
}

// throughputSampler is scheduler_perf's throughputCollector (test/integration/
// scheduler_perf): fed the count of bound pods every second, it skips samples until the
// first pod is bound and then the first sample itself (sampling and creating start
// independently), waits out seconds in which nothing was bound instead of recording 0 and
// then records the rate over the whole wait once per second waited, and divides by the
// time that really passed between samples.
type throughputSampler struct {
	started bool
	last    int
	lastAt  time.Time
	skipped int
	samples []float64
}

func (t *throughputSampler) observe(now time.Time, bound int) {
	switch {
	case bound == 0:
		return
	case !t.started:
		t.started, t.last, t.lastAt = true, bound, now
		return
	case bound == t.last:
		t.skipped++
		return
	}
	rate := float64(bound-t.last) / now.Sub(t.lastAt).Seconds()
	for range t.skipped + 1 {
		t.samples = append(t.samples, rate)
	}
	t.last, t.lastAt, t.skipped = bound, now, 0
}

// SchedulingThroughput summarises per-second samples of pods bound per second as
// scheduler_perf does: their mean, and the nearest-rank percentiles of the sorted samples.
type SchedulingThroughput struct {
	Samples int     `json:"samples"`
	Average float64 `json:"average"`
	Perc50  float64 `json:"perc50"`
	Perc90  float64 `json:"perc90"`
	Perc95  float64 `json:"perc95"`
	Perc99  float64 `json:"perc99"`
}

func (t *throughputSampler) summary() *SchedulingThroughput {
	n := len(t.samples)
	if n == 0 {
		return nil
	}
	s := slices.Clone(t.samples)
	slices.Sort(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	rank := func(p int) float64 { return s[(n*p+99)/100-1] } // ceil(n*p/100)-1
	return &SchedulingThroughput{Samples: n, Average: sum / float64(n), Perc50: rank(50), Perc90: rank(90), Perc95: rank(95), Perc99: rank(99)}
}

// waitNodesReady waits until want nodes matching selector (all with "") are Ready, saying
// how many are every few seconds.
func waitNodesReady(ctx context.Context, client kubernetes.Interface, selector string, want int, timeout time.Duration, say func(string, ...any)) error {
	deadline := time.Now().Add(timeout)
	last := time.Time{}
	for {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0", LabelSelector: selector})
		ready := 0
		if err == nil {
			for _, n := range nodes.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready >= want {
			say("%d nodes Ready", ready)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %d of %d nodes Ready after %s (last error: %v)", ready, want, timeout, err)
		}
		if time.Since(last) > 5*time.Second {
			say("%d of %d nodes Ready", ready, want)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// bindRecorder notes when each pod was first seen, and first seen bound.
type bindRecorder struct {
	mu      sync.Mutex
	created map[types.UID]time.Time
	bound   map[types.UID]time.Time
	running map[types.UID]bool
}

func newBindRecorder() *bindRecorder {
	return &bindRecorder{created: map[types.UID]time.Time{}, bound: map[types.UID]time.Time{}, running: map[types.UID]bool{}}
}

func (r *bindRecorder) observe(p *corev1.Pod) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.created[p.UID]; !ok {
		r.created[p.UID] = now
	}
	if _, ok := r.bound[p.UID]; !ok && p.Spec.NodeName != "" {
		r.bound[p.UID] = now
	}
	if p.Status.Phase == corev1.PodRunning {
		r.running[p.UID] = true
	}
}

func (r *bindRecorder) runningCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

func (r *bindRecorder) counts() (created, bound int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.created), len(r.bound)
}

func (r *bindRecorder) result(start time.Time) *SchedulerResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var firstCreated, lastCreated, lastBound time.Time
	for _, t := range r.created {
		if firstCreated.IsZero() || t.Before(firstCreated) {
			firstCreated = t
		}
		if t.After(lastCreated) {
			lastCreated = t
		}
	}
	var lat []time.Duration
	perSecond := map[int64]int{}
	for uid, b := range r.bound {
		if b.After(lastBound) {
			lastBound = b
		}
		lat = append(lat, b.Sub(r.created[uid]))
		perSecond[b.Unix()]++
	}
	slices.Sort(lat)
	res := &SchedulerResult{Bound: len(r.bound),
		CreatedIn: lastCreated.Sub(start).Seconds(), BoundIn: lastBound.Sub(firstCreated).Seconds(),
		P50Ms: ms(Percentile(lat, 0.50)), P90Ms: ms(Percentile(lat, 0.90)), P99Ms: ms(Percentile(lat, 0.99)), MaxMs: ms(Percentile(lat, 1))}
	if res.BoundIn > 0 {
		res.PodsPerSecond = float64(res.Bound) / res.BoundIn
	}
	if e2e := lastBound.Sub(start).Seconds(); e2e > 0 {
		res.EndToEndPerSecond = float64(res.Bound) / e2e
	}
	for _, n := range perSecond {
		res.PeakPerSecond = max(res.PeakPerSecond, n)
	}
	return res
}

// profileServers saves a profile of each server (its /debug/pprof/<what>, as the admin) as
// <dir>/<label>-<server>.pprof: "profile?seconds=N" is a CPU profile of the next N seconds,
// "heap" the heap now. The returned function waits for them.
func profileServers(ctx context.Context, lc *cluster.LocalCluster, servers []cluster.Process, dir, label, what string, say func(string, ...any)) func() {
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			rc, err := cluster.RestConfig(lc.Kubeconfig, s.Name)
			if err != nil {
				say("profile %s: %v", s.Name, err)
				return
			}
			hc, err := rest.HTTPClientFor(rc)
			if err != nil {
				say("profile %s: %v", s.Name, err)
				return
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.APIURL+"/debug/pprof/"+what, nil)
			if err != nil {
				return
			}
			resp, err := hc.Do(req)
			if err != nil {
				say("profile %s: %v", s.Name, err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				say("profile %s: %s", s.Name, resp.Status)
				return
			}
			path := filepath.Join(dir, label+"-"+s.Name+".pprof")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return
			}
			f, err := os.Create(path)
			if err != nil {
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, resp.Body); err == nil {
				say("saved profile %s", path)
			}
		})
	}
	return wg.Wait
}

// WriteTable prints the result as a small table.
func (r *SchedulerResult) WriteTable(w io.Writer) error {
	how := fmt.Sprintf("in %d Deployments", r.Deployments)
	if r.Via == scalePodsDirect {
		how = fmt.Sprintf("created directly (bare pods, %d writers)", r.Writers)
	}
	if _, err := fmt.Fprintf(w, `scheduler benchmark: %d hollow nodes, %d pods %s, %d servers on this machine
  pods bound                 %d
  created in                 %.1fs (first create call -> last pod created)
  bound in                   %.1fs (first pod created -> last pod bound)
  pods bound per second      %.0f  overall, first pod created -> last bound (from the first create call: %.0f; peak second %d)
`, r.Nodes, r.Pods, how, r.Servers, r.Bound, r.CreatedIn, r.BoundIn, r.PodsPerSecond, r.EndToEndPerSecond, r.PeakPerSecond); err != nil {
		return err
	}
	if t := r.Throughput; t != nil {
		if _, err := fmt.Fprintf(w, "  SchedulingThroughput       average %.0f pods/s, p50 %.0f / p90 %.0f / p99 %.0f (scheduler_perf's: %d one-second samples while binding)\n",
			t.Average, t.Perc50, t.Perc90, t.Perc99, t.Samples); err != nil {
			return err
		}
	}
	if len(r.Requests) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Requests)) {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, r.Requests[k]))
		}
		if _, err := fmt.Fprintf(w, "  API requests per bound pod %s\n", strings.Join(parts, ", ")); err != nil {
			return err
		}
	}
	if len(r.CPU) > 0 {
		var parts []string
		servers := 0.0
		for _, c := range r.CPU {
			name := c.Name
			if c.Leader {
				name += " (leader)"
			}
			if !strings.HasPrefix(c.Name, "hollow-nodes") {
				servers += c.MsPerPod
			}
			parts = append(parts, fmt.Sprintf("%s %.2f", name, c.MsPerPod))
		}
		if _, err := fmt.Fprintf(w, "  CPU ms per bound pod       %s; the servers together %.2f\n", strings.Join(parts, ", "), servers); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, `  create->bound p50/p90/p99  %.0f / %.0f / %.0f ms (max %.0f ms)
  leader changes meanwhile   %d
`, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.Elections)
	return err
}

// WriteJSONFile writes the result as JSON.
func (r *SchedulerResult) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// maxTerm is the highest Raft term the servers report (0 if none answers).
func maxTerm(ctx context.Context, lc *cluster.LocalCluster, servers []cluster.Process) int {
	term := 0
	for _, m := range serverStatus(ctx, lc, servers).Members {
		term = max(term, int(m.Term))
	}
	return term
}

func serverStatus(ctx context.Context, lc *cluster.LocalCluster, servers []cluster.Process) cluster.Status {
	var targets []cluster.StatusTarget
	for _, p := range servers {
		rc, err := cluster.RestConfig(lc.Kubeconfig, p.Name)
		if err != nil {
			continue
		}
		targets = append(targets, cluster.StatusTarget{Name: p.Name, APIURL: p.APIURL, Config: rc})
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return cluster.CollectStatus(sctx, targets)
}
