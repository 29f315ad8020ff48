package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/cluster"
)

// APIOptions configure RunAPI (`skiff bench api`).
type APIOptions struct {
	Out      string // result.json, summary.md, the charts and the systems' data go here
	Binary   string // the skiff binary whose servers are measured
	Peer     string // "none" or "k8s-reference"
	Scale    string // "small" (one step) or "full" (100, 1,000, 5,000 nodes)
	Duration time.Duration
	// Pods is the size of the listed namespace; Watchers the fan-out steps; WatchRate their
	// writes per second; WatchRuns how often each step runs (its row is the run of median
	// p99: with the fan-out and the clients' decoding saturating two cores, one run's p99
	// swung 3x between runs of one binary); ListRepeats the lists per mode.
	Pods        int
	Watchers    []int
	WatchRate   int
	WatchRuns   int
	ListRepeats int
	PacedRate   int // writes/s of the paced create row (issue 3's "at 500 writes/s")
	// Nodes and SchedPods size the small step's scheduling run (100 nodes, 3,000 pods);
	// MaxNodes ends --scale full after the step of that many nodes (0: all steps); MinNodes
	// starts it at the first step of at least that many (to run a large step alone).
	Nodes, SchedPods, MaxNodes, MinNodes int
	// ScheduleTimeout bounds each scheduling run (0: 5 minutes or pods/50 seconds, whichever
	// is longer); NodesTimeout the wait for the nodes to be Ready (0: 5 minutes or 0.36 s a
	// node). Set, they are exact: a run cut short still reports the pods/s it reached.
	ScheduleTimeout, NodesTimeout time.Duration
	// K8sReference is the directory of the reference's build.sh and run.sh; K8sWork the
	// WORK its build.sh builds into ($K8sWork/bin). UpstreamEtcd is its etcd members.
	K8sReference, K8sWork string
	UpstreamEtcd          int
	// ProfileDir, if set, gets CPU profiles of skiff's servers during each workload phase
	// (<phase>-<step>-<server>.pprof) and their heap profiles when memory is read.
	ProfileDir string
	// RaftHeartbeat, if set, restarts skiff's servers with --raft-heartbeat-timeout.
	RaftHeartbeat time.Duration
	// MinMemMB stops a step when the machine's MemAvailable falls below it.
	MinMemMB float64
	// SkiffNodes is what simulates skiff's nodes: "hollow" (skiff's own hollow agents, the
	// default) or "kwok" (the reference's kwok, as upstream's nodes are simulated). With
	// kwok the scheduling rows compare like with like, and at 5,000 nodes the cores go to
	// the control plane rather than to 5,000 agents; kwok's separate check is then implied.
	SkiffNodes string
	// Only, if set, runs just these phases of each step (apiPhases), to repeat one of them
	// cheaply; empty runs them all. The simulated nodes start only for "nodes" or "schedule".
	Only     []string
	Command  string // recorded in the report
	Progress io.Writer
}

// apiPhases are the phases of a step, in the order they run, as --only names them.
var apiPhases = []string{"nodes", "cm", "paced", "list", "watch", "schedule", "rss", "kwok"}

// runs reports whether the phase is selected.
func (o *APIOptions) runs(phase string) bool {
	if len(o.Only) == 0 {
		return true
	}
	for _, p := range o.Only {
		if p == phase || (phase == "nodes" && p == "schedule") {
			return true
		}
	}
	return false
}

func (o *APIOptions) defaults() {
	if o.Peer == "" {
		o.Peer = "none"
	}
	if o.Scale == "" {
		o.Scale = "small"
	}
	if o.SkiffNodes == "" {
		o.SkiffNodes = "hollow"
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Pods == 0 {
		o.Pods = 10000
	}
	if o.Watchers == nil {
		o.Watchers = []int{100, 1000}
	}
	if o.WatchRate == 0 {
		o.WatchRate = 100
	}
	if o.WatchRuns == 0 {
		o.WatchRuns = 3
	}
	if o.PacedRate == 0 {
		o.PacedRate = 500
	}
	if o.ListRepeats == 0 {
		o.ListRepeats = 10
	}
	if o.Nodes == 0 {
		o.Nodes = 100
	}
	if o.SchedPods == 0 {
		o.SchedPods = 3000
	}
	if o.K8sReference == "" {
		o.K8sReference = "../shared/k8s-reference"
	}
	if o.K8sWork == "" {
		o.K8sWork = filepath.Join(os.TempDir(), "k8s-reference")
	}
	if o.UpstreamEtcd == 0 {
		o.UpstreamEtcd = 1
	}
	if o.MinMemMB == 0 {
		o.MinMemMB = 512
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// apiStep is one size at which every system is measured afresh.
type apiStep struct {
	Name        string
	Nodes, Pods int
	KwokCheck   bool // also run kwok against skiff (the first step only: it is a check)
}

// apiSteps are the steps of a scale: small is one step of o.Nodes nodes and o.SchedPods
// pods; full is 100/3k, 1,000/30k, 5,000/150k (up to MaxNodes).
func apiSteps(o APIOptions) ([]apiStep, error) {
	switch o.Scale {
	case "small":
		return []apiStep{{Name: "small", Nodes: o.Nodes, Pods: o.SchedPods, KwokCheck: true}}, nil
	case "full":
		var steps []apiStep
		for i, n := range []int{100, 1000, 5000} {
			if o.MaxNodes > 0 && n > o.MaxNodes {
				break
			}
			if n < o.MinNodes {
				continue
			}
			steps = append(steps, apiStep{Name: strconv.Itoa(n), Nodes: n, Pods: 30 * n, KwokCheck: i == 0})
		}
		return steps, nil
	}
	return nil, fmt.Errorf("bench api: unknown scale %q (small or full)", o.Scale)
}

// RunAPI measures each system in turn at each step (skiff; with a peer, the upstream
// reference too, built first if its binaries are missing) and writes Out/result.json,
// Out/summary.md and the charts, after every system's step so that a stopped run keeps
// what it measured. Every process it starts is stopped before it returns, also on error
// or interruption. A step a system could not finish (a process fell over, memory ran out)
// is a result: its rows say why, and the system skips the larger steps.
func RunAPI(ctx context.Context, o APIOptions) (*APIReport, error) {
	o.defaults()
	if o.Out == "" || o.Binary == "" {
		return nil, errors.New("bench api: Out and Binary are required")
	}
	steps, err := apiSteps(o)
	if err != nil {
		return nil, err
	}
	for _, p := range o.Only {
		if !slices.Contains(apiPhases, p) {
			return nil, fmt.Errorf("bench api: unknown phase %q (%s)", p, strings.Join(apiPhases, ", "))
		}
	}
	switch o.Peer {
	case "none", "k8s-reference":
	default:
		return nil, fmt.Errorf("bench api: unknown peer %q (none or k8s-reference)", o.Peer)
	}
	switch o.SkiffNodes {
	case "hollow":
	case "kwok":
		for i := range steps {
			steps[i].KwokCheck = false // every step runs kwok against skiff
		}
	default:
		return nil, fmt.Errorf("bench api: unknown --skiff-nodes %q (hollow or kwok)", o.SkiffNodes)
	}
	if o.Out, err = outDir(o.Out); err != nil {
		return nil, err
	}
	say := func(f string, a ...any) { fmt.Fprintf(o.Progress, "bench api: "+f+"\n", a...) }
	rep := &APIReport{Command: o.Command, Machine: machineNow()}
	finish := func() error {
		rep.Machine.LoadEnd = loadAvg()
		return rep.WriteFiles(o.Out)
	}
	var upstreamErr error
	if o.Peer == "k8s-reference" {
		upstreamErr = ensureK8sReference(ctx, o.K8sReference, o.K8sWork, o.Progress)
		if ctx.Err() != nil {
			return rep, errors.Join(ctx.Err(), finish())
		}
		if upstreamErr != nil {
			say("upstream: %v", upstreamErr)
		}
	}
	kwokBin := filepath.Join(o.K8sWork, "bin")
	skiffKwok := "" // kwok's binaries, when kwok simulates skiff's nodes
	if o.SkiffNodes == "kwok" {
		if o.Peer != "k8s-reference" {
			if err := ensureK8sReference(ctx, o.K8sReference, o.K8sWork, o.Progress); err != nil {
				return nil, fmt.Errorf("bench api: --skiff-nodes kwok needs the reference's kwok: %w", err)
			}
		}
		skiffKwok = kwokBin
	}
	fell := map[string]string{} // system -> why it stopped
	for _, st := range steps {
		var systems []apiSystem
		systems = append(systems, &skiffSystem{dir: filepath.Join(o.Out, "skiff-"+st.Name), binary: o.Binary,
			raftHeartbeat: o.RaftHeartbeat, progress: o.Progress, kwokBin: skiffKwok})
		if o.Peer == "k8s-reference" {
			systems = append(systems, &upstreamSystem{refDir: o.K8sReference, buildWork: o.K8sWork,
				work: filepath.Join(o.Out, "upstream-"+st.Name), etcdMembers: o.UpstreamEtcd, progress: o.Progress})
		}
		for _, sys := range systems {
			name := sys.Name()
			switch {
			case name == APIUpstream && upstreamErr != nil:
				rep.Results = append(rep.Results, apiErrorRow(name, st.Name, "start", 0, upstreamErr))
				continue
			case fell[name] != "":
				rep.Stopped = append(rep.Stopped, fmt.Sprintf("%s: step %s skipped: %s", name, st.Name, fell[name]))
				continue
			}
			rows, why, err := runAPISystem(ctx, sys, st, o, kwokBin)
			rep.Results = append(rep.Results, rows...)
			if err != nil {
				rep.Results = append(rep.Results, apiErrorRow(name, st.Name, "start", 0, err))
				why = err.Error()
			}
			if why != "" && ctx.Err() == nil {
				fell[name] = fmt.Sprintf("stopped at step %s: %s", st.Name, why)
				rep.Stopped = append(rep.Stopped, fmt.Sprintf("%s: %s", name, fell[name]))
			}
			if err := finish(); err != nil {
				return rep, err
			}
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	return rep, finish()
}

// machineNow describes this machine now.
func machineNow() Machine {
	m := Machine{Date: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemTotalMB = kb / 1024
			}
		}
	}
	return m
}

func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// errStepStopped marks a step ended by the watchdog; its cause says why.
var errStepStopped = errors.New("step stopped")

// watchStep cancels the step's context when a control-plane process or the node simulator
// has exited or the machine's available memory falls below minMB. The cause says which.
func watchStep(ctx context.Context, cancel context.CancelCauseFunc, sys apiSystem, fleet func() nodeFleet, minMB float64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, pid := range sys.PIDs() {
				if !cluster.ProcessAlive(pid) {
					cancel(fmt.Errorf("%w: %s control-plane process %d exited", errStepStopped, sys.Name(), pid))
					return
				}
			}
			if f := fleet(); f != nil {
				if err := f.Alive(); err != nil {
					cancel(fmt.Errorf("%w: %v", errStepStopped, err))
					return
				}
			}
			if mb, err := memAvailableMB(); err == nil && mb < minMB {
				cancel(fmt.Errorf("%w: the machine ran out of memory (MemAvailable %.0f MB < %.0f MB)", errStepStopped, mb, minMB))
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// runAPISystem starts sys afresh, brings up the step's nodes, runs every workload, and
// stops it all. why is set when the step was stopped early (a process fell over, memory
// ran out); err when the system could not start.
func runAPISystem(ctx context.Context, sys apiSystem, st apiStep, o APIOptions, kwokBin string) (rows []APIResult, why string, err error) {
	name, step := sys.Name(), st.Name
	say := func(f string, a ...any) { fmt.Fprintf(o.Progress, "bench api: "+f+"\n", a...) }
	say("%s: step %s: starting (%d nodes, %d pods to schedule)", name, step, st.Nodes, st.Pods)
	var (
		mu    sync.Mutex
		fleet nodeFleet
	)
	getFleet := func() nodeFleet { mu.Lock(); defer mu.Unlock(); return fleet }
	defer func() {
		if f := getFleet(); f != nil {
			say("%s: stopping the nodes", name)
			f.Stop()
		}
		say("%s: stopping", name)
		if serr := sys.Stop(); serr != nil && err == nil {
			say("%s: stop: %v", name, serr)
		}
	}()
	cfgs, err := sys.Start(ctx)
	if err != nil {
		return nil, "", err
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := watchStep(sctx, cancel, sys, getFleet, o.MinMemMB)
	defer stopWatch()
	// stopped ends the step with the watchdog's reason, as rows.
	stopped := func(workload string) ([]APIResult, string, error) {
		cause := context.Cause(sctx)
		if ctx.Err() != nil {
			return rows, "", nil
		}
		rows = append(rows, apiErrorRow(name, step, workload, 0, cause))
		return rows, cause.Error(), nil
	}
	admin, err := apiClients(cfgs, len(cfgs))
	if err != nil {
		return nil, "", err
	}
	// profile starts profiles of skiff's servers for a phase and returns the wait for them.
	// For a CPU profile, the bench process itself is profiled too (bench-<phase>-<step>-
	// <system>.pprof): its clients share the machine with the servers.
	profile := func(label, what string) func() {
		waitSelf := func() {}
		if secs, ok := strings.CutPrefix(what, "profile?seconds="); ok && o.ProfileDir != "" {
			n, _ := strconv.Atoi(secs)
			waitSelf = profileSelf(sctx, filepath.Join(o.ProfileDir, fmt.Sprintf("bench-%s-%s-%s.pprof", label, step, name)),
				time.Duration(n)*time.Second, say)
		}
		s, ok := sys.(*skiffSystem)
		if !ok || o.ProfileDir == "" || s.lc == nil {
			return waitSelf
		}
		var servers []cluster.Process
		for _, p := range s.lc.Processes {
			if p.Role == "server" {
				servers = append(servers, p)
			}
		}
		waitServers := profileServers(sctx, s.lc, servers, o.ProfileDir, label+"-"+step, what, say)
		return func() { waitServers(); waitSelf() }
	}
	cpu := fmt.Sprintf("profile?seconds=%d", max(1, int(o.Duration/time.Second)))
	for _, ns := range []string{"bench-cm", "bench-list", "bench-watch"} {
		if err := ensureNamespace(sctx, admin[0], ns); err != nil {
			return nil, "", fmt.Errorf("namespace %s: %w", ns, err)
		}
	}

	if o.runs("nodes") {
		say("%s: starting %d nodes", name, st.Nodes)
		f, err := sys.StartNodes(sctx, admin[0], st.Nodes)
		if err != nil {
			if sctx.Err() != nil {
				return stopped("nodes")
			}
			return nil, "", fmt.Errorf("nodes: %w", err)
		}
		mu.Lock()
		fleet = f
		mu.Unlock()
		nodesTimeout := o.NodesTimeout
		if nodesTimeout == 0 {
			nodesTimeout = nodesReadyTimeout(st.Nodes)
		}
		if err := waitNodesReady(sctx, admin[0], "", st.Nodes, nodesTimeout, func(f string, a ...any) { say(name+": "+f, a...) }); err != nil {
			if sctx.Err() != nil {
				return stopped("nodes")
			}
			rows = append(rows, apiErrorRow(name, step, "nodes", 0, err))
			return rows, err.Error(), nil
		}
	}

	for _, clients := range []int{1, 64} {
		if !o.runs("cm") {
			break
		}
		say("%s: configmaps create/get/update/delete, %d client(s), %s each", name, clients, o.Duration)
		cs, err := apiClients(cfgs, clients)
		if err != nil {
			return rows, "", err
		}
		wait := profile(fmt.Sprintf("cm-create-%d", clients), cpu) // the create phase
		res := runConfigMaps(sctx, cs, "bench-cm", o.Duration)
		wait()
		if sctx.Err() != nil {
			return stopped("cm-create")
		}
		for _, wl := range []string{"cm-create", "cm-get", "cm-update", "cm-delete"} {
			rows = append(rows, apiRow(name, step, wl, clients, res[wl], true))
		}
	}

	if cs, err := apiClients(cfgs, 64); err == nil && o.runs("paced") {
		say("%s: configmap creates paced at %d/s by 64 clients for %s", name, o.PacedRate, o.Duration)
		row := apiRow(name, step, "cm-create", 64, runPacedCreates(sctx, cs, "bench-cm", o.PacedRate, o.Duration), true)
		if sctx.Err() != nil {
			return stopped("cm-create")
		}
		row.Variant = fmt.Sprintf("paced %d/s", o.PacedRate)
		row.Note = "latency from when each write was due"
		rows = append(rows, row)
	}

	if o.runs("list") {
		say("%s: creating %d pods", name, o.Pods)
		err := createPods(sctx, admin, "bench-list", o.Pods, o.Progress)
		switch {
		case err != nil && sctx.Err() != nil:
			return stopped("list-pods")
		case err != nil:
			rows = append(rows, apiErrorRow(name, step, "list-pods", 1, err))
		default:
			for _, m := range []struct{ workload, mode string }{{"list-pods", ""}, {"list-pods-rv0", "0"}, {"list-pods-paged", "paged"}} {
				say("%s: %s, %d lists of %d pods", name, m.workload, o.ListRepeats, o.Pods)
				wait := profile(m.workload, fmt.Sprintf("profile?seconds=%d", 5))
				s := runLists(sctx, admin[1%len(admin)], "bench-list", m.mode, o.Pods, o.ListRepeats)
				wait()
				if sctx.Err() != nil {
					return stopped(m.workload)
				}
				row := apiRow(name, step, m.workload, 1, s, false)
				row.Note = fmt.Sprintf("%d pods", o.Pods)
				rows = append(rows, row)
			}
		}
	}

	for _, n := range o.Watchers {
		if !o.runs("watch") {
			break
		}
		say("%s: watch fan-out, %d watchers, %d writes/s for %s", name, n, o.WatchRate, o.Duration)
		// Every watcher on the first endpoint (the kubeconfig's current context, where a
		// client goes unless told otherwise), 100 to a connection: the same client layout
		// against both systems. Spread over skiff's three servers (30 connections of ~33
		// streams) the fan-out ran in three processes sharing the two cores and the
		// delay's p99 was four times upstream's (bench/README.md, "Watch fan-out").
		cs, err := watchClients(cfgs[0], n)
		if err != nil {
			return rows, "", err
		}
		skiffSys, _ := sys.(*skiffSystem)
		var before []*apiMetrics
		if skiffSys != nil && skiffSys.lc != nil {
			before = scrapeSkiffServers(sctx, skiffSys.lc)
		}
		wait := profile(fmt.Sprintf("watch-%d", n), cpu) // from the watches' set-up on
		var runs []watchRun
		for i := 0; i < o.WatchRuns && err == nil && sctx.Err() == nil; i++ {
			var r watchRun
			r.s, r.written, err = runWatchFanout(sctx, cs, admin[0], "bench-watch", i, n, o.WatchRate, o.Duration)
			if err == nil {
				say("%s: watch fan-out, %d watchers, run %d of %d: p50 %s, p99 %s", name, n, i+1, o.WatchRuns,
					r.s.P50.Round(100*time.Microsecond), r.s.P99.Round(100*time.Microsecond))
				runs = append(runs, r)
			}
		}
		wait()
		delivery := ""
		if before != nil {
			// The servers' share of the delay: from the event's arrival at a server's shared
			// stream to its flush to the watcher; the rest is the write and the client.
			h := watchDelivery(before, scrapeSkiffServers(sctx, skiffSys.lc))
			p50, _ := h.quantile(0.50)
			p99, _ := h.quantile(0.99)
			delivery = fmt.Sprintf("; server delivery (shared stream to flush) p50 %.1f ms, p99 %.1f ms", p50*1000, p99*1000)
			say("%s: watch fan-out, %d watchers: %.0f deliveries%s", name, n, h.Count, delivery)
		}
		if sctx.Err() != nil {
			return stopped("watch")
		}
		if err != nil {
			rows = append(rows, apiErrorRow(name, step, "watch", n, err))
			continue
		}
		med, p99s := medianWatchRun(runs)
		s, written := med.s, med.written
		say("%s: watch fan-out, %d watchers, the run of median p99: %d events, %d missed, p50 %s, p99 %s, p99.9 %s; %.1f writes/s started", name, n, s.Ops, s.Errors,
			s.P50.Round(100*time.Microsecond), s.P99.Round(100*time.Microsecond), s.P999.Round(100*time.Microsecond), written)
		row := apiRow(name, step, "watch", n, s, false)
		row.Note = fmt.Sprintf("%d watchers, %d writes/s paced (%.1f/s started); delay from write start; the run of median p99 of %d (p99s %s ms)%s",
			n, o.WatchRate, written, len(runs), p99s, delivery)
		rows = append(rows, row)
	}

	variant := "hollow nodes"
	if s, ok := sys.(*skiffSystem); name == APIUpstream || (ok && s.kwokBin != "") {
		variant = "kwok nodes"
	}
	timeout := o.ScheduleTimeout
	if timeout == 0 {
		timeout = max(5*time.Minute, time.Duration(st.Pods/50)*time.Second)
	}
	// scheduled is how many pods the scheduling run got bound: what the system holds
	// for the memory row, which a run cut short (upstream's controller-manager creates
	// 20 pods a second) leaves far below st.Pods.
	scheduled := 0
	if o.runs("schedule") {
		wait := profile("schedule", "profile?seconds=20")
		srows, err := runSchedule(sctx, admin[0], scheduleSpec{system: name, step: step, variant: variant, ns: "bench-sched",
			nodes: st.Nodes, pods: st.Pods, timeout: timeout}, say)
		wait()
		rows = append(rows, srows...)
		for _, r := range srows {
			if r.Workload == "schedule-bound" {
				scheduled = r.Ops
			}
		}
		if sctx.Err() != nil {
			return stopped("schedule-bound")
		}
		if err != nil {
			rows = append(rows, apiErrorRow(name, step, "schedule-bound", 1, err))
		}
	}

	if o.runs("rss") {
		profile("heap", "heap")()
		rss, peak, err := summedMemMB(sys.PIDs())
		if err != nil {
			rows = append(rows, apiErrorRow(name, step, "rss", 0, err))
		} else {
			what := "servers"
			if name == APIUpstream {
				what = "processes (apiserver, etcd, controller-manager, scheduler)"
			}
			rows = append(rows, APIResult{System: name, Step: step, Workload: "rss", RSSMB: f64(peak),
				Note: fmt.Sprintf("summed peak (VmHWM) of %d %s; steady (VmRSS after the scheduling run) %.0f MB; %d nodes, %d listed pods + %d scheduled (of %d asked)",
					len(sys.PIDs()), what, rss, st.Nodes, o.Pods, scheduled, st.Pods)})
		}
	}
	// After the memory: kwok's nodes and pods come on top of what upstream holds.
	if s, ok := sys.(*skiffSystem); ok && st.KwokCheck && o.runs("kwok") {
		rows = append(rows, kwokOnSkiff(sctx, s, admin[0], st, kwokBin, timeout, say)...)
		if sctx.Err() != nil {
			return stopped("schedule-bound")
		}
	}
	return rows, "", nil
}

// kwokOnSkiff runs kwok v0.8 (the reference build's binary, unchanged) against the skiff
// cluster with its admin kubeconfig: st.Nodes kwok nodes must go Ready and st.Pods pods
// scheduled onto them Running. Its rows are schedule rows with variant "kwok nodes", the
// same as upstream's, so they compare like with like.
func kwokOnSkiff(ctx context.Context, s *skiffSystem, client kubernetes.Interface, st apiStep, binDir string, timeout time.Duration, say func(string, ...any)) []APIResult {
	fail := func(err error) []APIResult {
		say("skiff: kwok check: %v", err)
		return []APIResult{{System: APISkiff, Step: st.Name, Workload: "schedule-bound", Clients: 1, Variant: "kwok nodes",
			Nodes: st.Nodes, Pods: st.Pods, Error: "kwok on skiff: " + err.Error()}}
	}
	fleet, err := startKwokFleet(ctx, s, client, binDir, st.Nodes, func(f string, a ...any) { say("skiff: kwok check: "+f, a...) })
	if err != nil {
		return fail(err)
	}
	defer fleet.Stop()
	if err := waitNodesReady(ctx, client, "type=kwok", st.Nodes, 3*time.Minute, func(f string, a ...any) { say("skiff: kwok nodes: "+f, a...) }); err != nil {
		if dead := fleet.Alive(); dead != nil {
			err = fmt.Errorf("%w; %v", err, dead)
		}
		return fail(err)
	}
	rows, err := runSchedule(ctx, client, scheduleSpec{system: APISkiff, step: st.Name, variant: "kwok nodes", ns: "bench-kwok",
		nodes: st.Nodes, pods: st.Pods, nodeSelector: map[string]string{"type": "kwok"}, timeout: timeout}, say)
	if err != nil && ctx.Err() == nil {
		rows = append(rows, fail(err)...)
	}
	return rows
}

// watchClients gives each group of up to 100 watchers its own connection to cfg's
// endpoint, as separate programs would have, rather than a thousand streams on one.
func watchClients(cfg *rest.Config, n int) ([]kubernetes.Interface, error) {
	out := make([]kubernetes.Interface, n)
	for i := range out {
		if i%100 == 0 {
			c := rest.CopyConfig(cfg)
			// A Dial of its own makes client-go build this clientset its own transport.
			c.Dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
			cs, err := apiClients([]*rest.Config{c}, 1)
			if err != nil {
				return nil, err
			}
			out[i] = cs[0]
		} else {
			out[i] = out[i-1]
		}
	}
	return out, nil
}
