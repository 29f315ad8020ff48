package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Kubernetes' documented limits for one cluster (kubernetes.io, "Considerations for large
// clusters"), the most `skiff bench scale` accepts; and the hollow nodes' pod capacity.
const (
	ScaleMaxNodes   = 5000
	ScaleMaxPods    = 150000
	hollowMaxPods   = 110 // skiff hollow-nodes --max-pods default, the kubelet's
	scaleNamespace  = "scale"
	scalePodsViaDep = "deployments"
	scalePodsDirect = "pods"
)

// ScaleOptions configure RunScale (`skiff bench scale`).
type ScaleOptions struct {
	Out    string // result.json, summary.md, and the cluster (its logs are kept) go here
	Binary string // the skiff binary the servers and the hollow nodes run
	Nodes  int    // hollow nodes, in hollow-nodes processes of at most hollowNodesPerProcess
	// KwokDir, when set, is a directory holding kwok and kwok-stages.yaml (the reference
	// build's bin/): the nodes are then kwok's, as upstream's are in bench api, instead of
	// skiff's hollow agents. kwok's nodes renew Leases and report status (every 10 s and as
	// its stages say) from one process that costs next to nothing, so the machine's CPU goes
	// to the control plane being measured.
	KwokDir string
	Pods    int
	Via     string // "deployments" (1,000 replicas each, created at once) or "pods" (32 writers)
	// RaftHeartbeat, if set, restarts the servers with --raft-heartbeat-timeout.
	RaftHeartbeat time.Duration
	NodesTimeout  time.Duration // for every node to be Ready (default 5 min, or 0.36 s a node)
	Timeout       time.Duration // from the first create to every pod Running (default 15 min, or pods/50 s)
	Stall         time.Duration // no pod created, bound or Running for this long ends the run
	Settle        time.Duration // after convergence: the steady memory is read over this
	Interval      time.Duration // between progress lines and samples
	MinMemMB      float64       // the run stops when MemAvailable falls below this
	Command       string        // recorded in the report
	Progress      io.Writer
}

func (o *ScaleOptions) defaults() {
	if o.Nodes == 0 {
		o.Nodes = 1000
	}
	if o.Pods == 0 {
		o.Pods = 30000
	}
	if o.Via == "" {
		o.Via = scalePodsViaDep
	}
	if o.NodesTimeout == 0 {
		o.NodesTimeout = nodesReadyTimeout(o.Nodes)
	}
	if o.Timeout == 0 {
		o.Timeout = max(15*time.Minute, time.Duration(o.Pods/50)*time.Second)
	}
	if o.Stall == 0 {
		o.Stall = 5 * time.Minute
	}
	if o.Settle == 0 {
		o.Settle = 30 * time.Second
	}
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.MinMemMB == 0 {
		o.MinMemMB = 512
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

func (o *ScaleOptions) validate() error {
	switch {
	case o.Out == "" || o.Binary == "":
		return errors.New("bench scale: Out and Binary are required")
	case o.Nodes < 1 || o.Nodes > ScaleMaxNodes:
		return fmt.Errorf("bench scale: --nodes %d: from 1 to %d (Kubernetes' limit)", o.Nodes, ScaleMaxNodes)
	case o.Pods < 1 || o.Pods > ScaleMaxPods:
		return fmt.Errorf("bench scale: --pods %d: from 1 to %d (Kubernetes' limit)", o.Pods, ScaleMaxPods)
	case o.Pods > o.Nodes*hollowMaxPods:
		return fmt.Errorf("bench scale: %d pods do not fit on %d nodes of %d pods", o.Pods, o.Nodes, hollowMaxPods)
	case o.Via != scalePodsViaDep && o.Via != scalePodsDirect:
		return fmt.Errorf("bench scale: --via %q: deployments or pods", o.Via)
	}
	if o.KwokDir != "" {
		if err := kwokBuilt(o.KwokDir); err != nil {
			return fmt.Errorf("bench scale: --kwok: %w", err)
		}
	}
	return nil
}

// errScaleStopped marks a run that ended before every pod was Running.
var errScaleStopped = errors.New("bench scale: stopped before convergence")

// RunScale starts a fresh three-server cluster under o.Out and o.Nodes hollow nodes
// (startHollowNodes) (each renewing its Lease every 10 s, as the kubelet), waits for every node to
// be Ready, then creates o.Pods pods (through Deployments, or directly) and follows them
// until every one is Running as its node's agent reported it. It measures the servers'
// API latency by verb over that ramp (from their /metrics histograms), pods bound per
// second, the time to full convergence, and each server's peak and steady RSS. A run the
// cluster or the machine cannot finish (a process exits, memory runs low, nothing moves for
// o.Stall, o.Timeout passes, the context ends) is still a result: it says why, and the
// error wraps errScaleStopped. result.json and summary.md are written either way, and
// every process it started is stopped before it returns.
func RunScale(ctx context.Context, o ScaleOptions) (*ScaleResult, error) {
	o.defaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	var err error
	if o.Out, err = outDir(o.Out); err != nil {
		return nil, err
	}
	clusterDir := filepath.Join(o.Out, "cluster")
	// A cluster left there is another run's, live or killed: joining it would measure the
	// wrong thing, and this run's clean-up would take it down.
	if _, err := os.Stat(filepath.Join(clusterDir, "cluster.json")); err == nil {
		return nil, fmt.Errorf("bench scale: %s holds a cluster already (another run's, or one killed before it cleaned up: skiff down --purge --dir %s)", clusterDir, clusterDir)
	}
	say := func(f string, a ...any) { fmt.Fprintf(o.Progress, "scale: "+f+"\n", a...) }
	res := &ScaleResult{Command: o.Command, Machine: machineNow(), Nodes: o.Nodes, Pods: o.Pods, Via: o.Via, Phase: "start", Simulator: simHollow}
	if o.KwokDir != "" {
		res.Simulator = simKwok
	}
	if o.RaftHeartbeat > 0 {
		res.RaftHeartbeat = o.RaftHeartbeat.String()
	}
	sys := &skiffSystem{dir: clusterDir, binary: o.Binary, raftHeartbeat: o.RaftHeartbeat, kwokBin: o.KwokDir,
		progress: o.Progress, label: "scale: "}
	mon := &scaleMonitor{say: say, t0: time.Now()}
	var (
		fleetMu sync.Mutex
		fleet   nodeFleet
	)
	getFleet := func() nodeFleet { fleetMu.Lock(); defer fleetMu.Unlock(); return fleet }
	defer func() {
		mon.stop()
		if fleet := getFleet(); fleet != nil {
			say("stopping the %s nodes", res.Simulator)
			fleet.Stop()
		}
		say("stopping the servers (logs kept in %s-logs)", sys.dir)
		if err := sys.Stop(); err != nil {
			say("stop: %v", err)
		}
	}()
	// end finishes the report: why it stopped (nil: converged), and the files.
	end := func(why error) (*ScaleResult, error) {
		mon.stop()
		mon.report(res)
		res.Machine.LoadEnd = loadAvg()
		if why != nil {
			res.Stopped = strings.TrimPrefix(why.Error(), errStepStopped.Error()+": ")
			say("stopped in phase %s: %s", res.Phase, res.Stopped)
			why = fmt.Errorf("%w: %s", errScaleStopped, res.Stopped)
		}
		if err := res.WriteFiles(o.Out); err != nil {
			return res, errors.Join(why, err)
		}
		say("wrote %s and %s", filepath.Join(o.Out, "result.json"), filepath.Join(o.Out, "summary.md"))
		return res, why
	}

	say("starting 3 servers in %s", sys.dir)
	cfgs, err := sys.Start(ctx)
	if err != nil {
		return end(fmt.Errorf("the servers did not start: %w", err))
	}
	servers, err := mon.addServers(sys, cfgs)
	if err != nil {
		return end(err)
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := watchStep(sctx, cancel, sys, getFleet, o.MinMemMB)
	defer stopWatch()
	// why is the watchdog's reason once the run's context has ended, or the interruption.
	why := func() error {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
		return context.Cause(sctx)
	}
	admin, err := apiClients(cfgs, len(cfgs))
	if err != nil {
		return end(err)
	}
	mon.start(o.Interval)

	res.Phase = "nodes"
	mon.setPhase("nodes")
	nodesStart := time.Now()
	f, err := sys.StartNodes(sctx, admin[0], o.Nodes)
	if err != nil {
		return end(fmt.Errorf("the %s nodes did not start: %w", res.Simulator, err))
	}
	fleetMu.Lock()
	fleet = f
	fleetMu.Unlock()
	if ff, ok := f.(fleetFunc); ok {
		mon.setHollow(res.Simulator, ff.pids)
	}
	if err := waitNodesReady(sctx, admin[0], "", o.Nodes, o.NodesTimeout, func(f string, a ...any) { say("nodes: "+f, a...) }); err != nil {
		if sctx.Err() != nil {
			return end(why())
		}
		return end(err)
	}
	res.NodesReadySeconds = time.Since(nodesStart).Seconds()

	if err := ensureNamespace(sctx, admin[0], scaleNamespace); err != nil {
		return end(fmt.Errorf("namespace %s: %w", scaleNamespace, err))
	}
	rec := newPodTimes()
	inf, stopInformer, err := watchPodTimes(admin[0], scaleNamespace, rec)
	if err != nil {
		return end(err)
	}
	defer stopInformer()
	mon.setCounts(func() podCounts { return countPods(inf.GetStore()) })

	// The ramp: from the first create call to every pod Running.
	res.Phase = "ramp"
	startMetrics, staleStart := mon.scrapeOrLast(sctx)
	termBefore := maxTermOf(startMetrics)
	mon.setPhase("ramp")
	start := time.Now()
	var creating sync.WaitGroup
	createErr := make(chan error, 1)
	switch o.Via {
	case scalePodsViaDep:
		say("creating %d pods through %d Deployments", o.Pods, deploymentsFor(o.Pods))
		if err := createDeployments(sctx, admin[0], scaleNamespace, "scale", o.Pods, nil); err != nil {
			createErr <- err
		}
	case scalePodsDirect:
		say("creating %d pods directly, 32 writers over the %d servers", o.Pods, len(admin))
		creating.Go(func() {
			if err := createPodsWith(sctx, admin, scaleNamespace, o.Pods, 32, benchPods("pod"), func(f string, a ...any) { say(f, a...) }); err != nil {
				createErr <- err
			}
		})
	}
	defer func() { cancel(errors.New("the run ended")); creating.Wait() }()

	var stopped error
	last, lastMove := podCounts{}, time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
ramp:
	for {
		c := countPods(inf.GetStore())
		if c != last {
			last, lastMove = c, time.Now()
		}
		if c.Running >= o.Pods && c.Created >= o.Pods {
			break
		}
		if c.Bound >= o.Pods && res.Phase == "ramp" {
			res.Phase = "converge"
			mon.setPhase("converge")
		}
		select {
		case <-sctx.Done():
			stopped = why()
			break ramp
		case err := <-createErr:
			stopped = fmt.Errorf("creating the pods: %w", err)
			break ramp
		case <-tick.C:
		}
		if time.Since(lastMove) > o.Stall {
			stopped = fmt.Errorf("no pod was created, bound or became Running for %s (%d created, %d bound, %d Running; %d leader changes so far)",
				o.Stall, c.Created, c.Bound, c.Running, max(0, int(mon.maxTerm())-int(termBefore)))
			break ramp
		}
		if time.Since(start) > o.Timeout {
			stopped = fmt.Errorf("not every pod was Running after %s (%d created, %d bound, %d Running)", o.Timeout, c.Created, c.Bound, c.Running)
			break ramp
		}
	}
	rampEnd := time.Now()
	endMetrics, staleEnd := mon.scrapeOrLast(context.WithoutCancel(sctx))
	latency, failed := rampLatency(startMetrics, endMetrics)
	res.API = verbRows(latency, failed)
	res.APISeries, res.SLOMet = seriesRows(latency, failed)
	res.APIFrom = fmt.Sprintf("Server-side: apiserver_request_duration_seconds of the %d servers (their /metrics), read when the first create call was made and %.0f s later when the ramp ended, the difference summed over the servers; percentiles interpolated within the buckets (1 ms to 8.2 s, doubling) as Prometheus' histogram_quantile. Every client counts: the hollow agents, the controllers and scheduler, the bench. Watches, non-resource paths and streaming subresources are left out, as in clusterloader2's API responsiveness SLO.",
		len(servers), rampEnd.Sub(start).Seconds())
	if len(staleStart)+len(staleEnd) > 0 {
		res.APIFrom += fmt.Sprintf(" Servers that did not answer then, whose last earlier answer was used: at the start %v, at the end %v.", staleStart, staleEnd)
	}
	res.LeaderChanges = max(0, int(maxTermOf(endMetrics))-int(termBefore))
	if t := mon.maxTerm(); t > termBefore {
		res.LeaderChanges = max(res.LeaderChanges, int(t-termBefore))
	}
	c := countPods(inf.GetStore())
	res.Created, res.Bound, res.Running = c.Created, c.Bound, c.Running
	rec.mu.Lock()
	res.Scheduling = (&bindRecorder{created: rec.created, bound: rec.bound}).result(start)
	res.Scheduling.Command, res.Scheduling.Nodes, res.Scheduling.Pods = o.Command, o.Nodes, o.Pods
	res.Scheduling.Deployments = deploymentsFor(o.Pods)
	if o.Via == scalePodsDirect {
		res.Scheduling.Deployments = 0
	}
	res.Scheduling.Elections = res.LeaderChanges
	running := (&bindRecorder{created: rec.created, bound: rec.running}).result(start)
	rec.mu.Unlock()
	res.RunningP50Ms, res.RunningP99Ms = running.P50Ms, running.P99Ms
	if stopped != nil {
		return end(stopped)
	}
	res.Converged = true
	conv := secondsSince(start, lastOf(rec))
	res.ConvergedSeconds = &conv
	say("every pod Running %.1f s after the first create call; settling for %s", conv, o.Settle)

	res.Phase = "settle"
	mon.setPhase("settle")
	select {
	case <-sctx.Done():
		return end(why())
	case <-time.After(o.Settle):
	}
	res.Phase = "done"
	return end(nil)
}

// lastOf is when the last pod was first seen Running.
func lastOf(rec *podTimes) time.Time {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var last time.Time
	for _, t := range rec.running {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// podCounts are the pods of the namespace as last seen.
type podCounts struct{ Created, Bound, Running int }

// countPods counts a pod store: pods not being deleted, those with a node, those Running.
func countPods(store cache.Store) podCounts {
	var c podCounts
	for _, obj := range store.List() {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.DeletionTimestamp != nil {
			continue
		}
		c.Created++
		if p.Spec.NodeName != "" {
			c.Bound++
		}
		if p.Status.Phase == corev1.PodRunning {
			c.Running++
		}
	}
	return c
}

func maxTermOf(ms []*apiMetrics) uint64 {
	var t uint64
	for _, m := range ms {
		if m != nil {
			t = max(t, m.Term)
		}
	}
	return t
}

// scaleServer is one server the monitor reads.
type scaleServer struct {
	name, url string
	pid       int
	hc        *http.Client
}

// scaleMonitor samples the run every interval from its own goroutine: pods, the servers'
// Raft term and leader (from /metrics), their memory and the machine's, and prints the
// progress line. Its samples become the report's timeline and memory figures.
type scaleMonitor struct {
	say func(string, ...any)
	t0  time.Time

	mu      sync.Mutex
	servers []scaleServer
	hollow  []int  // pids of the node simulator's processes, none until they run
	simName string // and its name in the report
	phase   string
	counts  func() podCounts
	samples []ScaleSample
	peak    []float64 // VmHWM per server, then the hollow-nodes processes' summed
	steady  [][]float64
	lastRSS []float64
	term    uint64
	last    []*apiMetrics // each server's last answer
	leader  string
	leaders []string
	minAvMB float64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (m *scaleMonitor) addServers(sys *skiffSystem, cfgs []*rest.Config) ([]scaleServer, error) {
	var names []string
	for _, p := range sys.lc.Processes {
		if p.Role == "server" {
			names = append(names, p.Name)
		}
	}
	pids := sys.PIDs()
	if len(names) != len(cfgs) || len(pids) != len(cfgs) {
		return nil, fmt.Errorf("bench scale: %d servers, %d pids, %d client configs", len(names), len(pids), len(cfgs))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, c := range cfgs {
		hc, err := rest.HTTPClientFor(c)
		if err != nil {
			return nil, err
		}
		m.servers = append(m.servers, scaleServer{name: names[i], url: c.Host, pid: pids[i], hc: hc})
	}
	n := len(m.servers) + 1
	m.peak, m.steady, m.lastRSS = make([]float64, n), make([][]float64, n), make([]float64, n)
	m.last = make([]*apiMetrics, len(m.servers))
	return m.servers, nil
}

func (m *scaleMonitor) setPhase(p string) { m.mu.Lock(); m.phase = p; m.mu.Unlock() }
func (m *scaleMonitor) setHollow(name string, pids []int) {
	m.mu.Lock()
	m.simName, m.hollow = name, pids
	m.mu.Unlock()
}
func (m *scaleMonitor) setCounts(f func() podCounts) {
	m.mu.Lock()
	m.counts = f
	m.mu.Unlock()
}

func (m *scaleMonitor) maxTerm() uint64 { m.mu.Lock(); defer m.mu.Unlock(); return m.term }

// scrapeAll reads every server's /metrics at once, 10 s at most each; nil for a server
// that did not answer.
func (m *scaleMonitor) scrapeAll(ctx context.Context) []*apiMetrics {
	m.mu.Lock()
	servers := m.servers
	m.mu.Unlock()
	out := make([]*apiMetrics, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			out[i], _ = scrapeAPIMetrics(sctx, s.hc, s.url+"/metrics")
		})
	}
	wg.Wait()
	return out
}

// scrapeOrLast is scrapeAll, with each server that does not answer now replaced by its
// last answer to the monitor; stale says which servers those are.
func (m *scaleMonitor) scrapeOrLast(ctx context.Context) (out []*apiMetrics, stale []string) {
	out = m.scrapeAll(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, mt := range out {
		if mt == nil {
			out[i] = m.last[i]
			stale = append(stale, m.servers[i].name)
		} else {
			m.last[i] = mt
		}
	}
	return out, stale
}

func scrapeAPIMetrics(ctx context.Context, hc *http.Client, url string) (*apiMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseAPIMetrics(resp.Body)
}

func (m *scaleMonitor) start(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			m.sample(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// stop ends the sampling and waits for it; it may be called more than once.
func (m *scaleMonitor) stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
}

// sample takes one reading and prints the progress line.
func (m *scaleMonitor) sample(ctx context.Context) {
	metrics := m.scrapeAll(ctx)
	if ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := ScaleSample{Seconds: time.Since(m.t0).Seconds(), Phase: m.phase}
	if m.counts != nil {
		c := m.counts()
		s.Created, s.Bound, s.Running = c.Created, c.Bound, c.Running
	}
	for i, mt := range metrics {
		if mt == nil {
			continue
		}
		m.last[i] = mt
		m.term = max(m.term, mt.Term)
		if mt.Leader {
			s.Leader = m.servers[i].name
		}
	}
	s.Term = m.term
	if s.Leader != "" && s.Leader != m.leader {
		m.leader = s.Leader
		m.leaders = append(m.leaders, s.Leader)
	}
	// Each server is one slot; the hollow-nodes processes together are the last.
	slots := make([][]int, 0, len(m.servers)+1)
	for _, sv := range m.servers {
		slots = append(slots, []int{sv.pid})
	}
	slots = append(slots, m.hollow)
	for i, pids := range slots {
		var rss, hwm float64
		read := false
		for _, pid := range pids {
			if pid == 0 {
				continue
			}
			r, h, err := procMemMB(pid)
			if err != nil {
				continue // it exited: the watchdog says so; keep its last readings
			}
			rss, hwm, read = rss+r, hwm+h, true
		}
		if !read {
			continue
		}
		m.peak[i] = max(m.peak[i], hwm)
		m.lastRSS[i] = rss
		if m.phase == "settle" {
			m.steady[i] = append(m.steady[i], rss)
		}
		if i < len(m.servers) {
			s.RSSMB = append(s.RSSMB, rss)
		}
	}
	if av, err := memAvailableMB(); err == nil {
		s.AvailMB = av
		if m.minAvMB == 0 || av < m.minAvMB {
			m.minAvMB = av
		}
	}
	var rate string
	if n := len(m.samples); n > 0 {
		prev := m.samples[n-1]
		if dt := s.Seconds - prev.Seconds; dt > 0 {
			rate = fmt.Sprintf(" (%.0f/s)", float64(s.Bound-prev.Bound)/dt)
		}
	}
	m.samples = append(m.samples, s)
	rss := make([]string, len(s.RSSMB))
	for i, v := range s.RSSMB {
		rss[i] = fmt.Sprintf("%.0f", v)
	}
	leader := s.Leader
	if leader == "" {
		leader = "none"
	}
	m.say("%-8s %5.0fs  pods %d created, %d bound%s, %d Running  term %d, leader %s  RSS %s MB  MemAvailable %.1f GB",
		s.Phase, s.Seconds, s.Created, s.Bound, rate, s.Running, s.Term, leader, strings.Join(rss, "/"), s.AvailMB/1024)
}

// report puts the monitor's figures into r: the timeline, the leaders seen, memory.
func (m *scaleMonitor) report(r *ScaleResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.Timeline = m.samples
	r.Leaders = m.leaders
	r.MinMemAvailableMB = m.minAvMB
	r.Servers = nil
	if len(m.peak) == 0 {
		return // no server was started
	}
	mem := func(i int, name string) ScaleMemory {
		out := ScaleMemory{Name: name, PeakMB: m.peak[i], SteadyMB: m.lastRSS[i]}
		if v := m.steady[i]; len(v) > 0 {
			var sum float64
			for _, x := range v {
				sum += x
			}
			out.SteadyMB = sum / float64(len(v))
		}
		return out
	}
	for i, s := range m.servers {
		sm := mem(i, s.name)
		sm.Leader = s.name == m.leader
		r.Servers = append(r.Servers, sm)
	}
	if len(m.hollow) > 0 {
		h := mem(len(m.servers), m.simName)
		r.Hollow = &h
	}
}

// The node simulators bench scale runs.
const (
	simHollow = "hollow-nodes"
	simKwok   = "kwok"
)

// kwokBuilt says whether dir holds the reference build's kwok and its stages.
func kwokBuilt(dir string) error {
	for _, f := range []string{"kwok", "kwok-stages.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("kwok is not built (%s missing; bench api --peer k8s-reference builds it)", filepath.Join(dir, f))
		}
	}
	return nil
}

// startKwokFleet runs the reference's kwok in dir against the cluster (skiff's nodes with
// bench scale --kwok and bench api --skiff-nodes kwok, and bench api's kwok check) and
// creates n nodes for it to manage (kwok-node-0 ...).
func startKwokFleet(ctx context.Context, sys *skiffSystem, client kubernetes.Interface, dir string, n int, say func(string, ...any)) (nodeFleet, error) {
	if err := kwokBuilt(dir); err != nil {
		return nil, err
	}
	logPath := filepath.Join(sys.dir, "kwok.log")
	p, err := startKwok(dir, sys.Kubeconfig(), logPath)
	if err != nil {
		return nil, err
	}
	say("kwok (pid %d), log %s; creating %d kwok nodes", p.cmd.Process.Pid, logPath, n)
	fleet := fleetFunc{
		pids: []int{p.cmd.Process.Pid},
		alive: func() error {
			if ended, _ := p.exited(); ended {
				return p.failure()
			}
			return nil
		},
		stop: func() { p.stop(10 * time.Second) },
	}
	if err := createKwokNodes(ctx, client, 0, n); err != nil {
		fleet.Stop()
		return nil, err
	}
	return fleet, nil
}
