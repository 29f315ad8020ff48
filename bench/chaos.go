package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/cluster"
)

// ChaosOptions configure RunChaos.
type ChaosOptions struct {
	Exe          string // the skiff binary the cluster runs
	Duration     time.Duration
	Seed         uint64
	Faults       []string // kinds; see AllFaults
	LeaderKills  int      // at least this many leader kills when the schedule has room
	Agents       int      // hollow agents
	Netns        bool     // servers in their own network namespaces (root): real partitions
	Peer         string   // "etcd" or ""
	PeerDuration time.Duration
	Etcd         string // etcd binary
	Dir          string // where the temporary cluster directory is made
	Clients      int    // register clients per server
	Keys         int
	Progress     io.Writer

	// The pod workloads: churn lanes (Deployments created, scaled, rolled, deleted), bare
	// pods per second, and the steady Deployment's replicas per agent.
	ChurnLanes int
	PodRate    float64
	SteadyPer  int
	// RealAgents are libcontainer agents beside the hollow ones (root): the workload pods
	// run there in real containers too, which the run observes through their cgroups.
	RealAgents int
	TestImage  string // the static testimage binary the real agents serve
	// NodeGrace is the servers' --node-monitor-grace-period and Toleration the workload
	// pods' tolerationSeconds for an unreachable node: together they bound how soon a
	// killed agent's pods are evicted and replaced.
	NodeGrace  time.Duration
	Toleration time.Duration
	// ConvergeBound: how long after the last fault every Deployment must be at its desired
	// ready replicas, and every deleted pod gone.
	ConvergeBound time.Duration
	// LogsDir, when set, receives every server's and agent's log before the cluster's
	// directory is removed.
	LogsDir string
}

// RunChaos starts a fresh three-server cluster with hollow agents (and real ones when
// asked), runs the register and pod workloads against all servers while injecting faults,
// then checks the history, the acknowledged writes, the pods, the real agents' containers
// and the cluster's health. Everything it started is stopped and its data removed before
// it returns. The error is for a run that could not be made; failed
// checks are in the result (see ChaosResult.Failures).
func RunChaos(ctx context.Context, o ChaosOptions) (*ChaosResult, error) {
	say := func(format string, a ...any) {
		fmt.Fprintf(o.Progress, "chaos: "+format+"\n", a...)
	}
	res := &ChaosResult{Seed: o.Seed, Duration: o.Duration.String(), Started: time.Now()}
	if !o.Netns {
		var skipped []string
		o.Faults = slices.DeleteFunc(o.Faults, func(k string) bool {
			if slices.Contains(netnsFaults, k) {
				skipped = append(skipped, k)
				return true
			}
			return false
		})
		if len(skipped) > 0 {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%v: need network namespaces (run as root without --netns=false)", skipped))
		}
	}
	dir, cleanup, err := clusterDir(o.Dir, "skiff-chaos-", say)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	defer keepLogs(dir, o.LogsDir) // runs before Down removes them
	say("starting 3 servers, %d hollow agents and %d real agents in %s (netns %v)", o.Agents, o.RealAgents, dir, o.Netns)
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 3, Agents: o.Agents, RealAgents: o.RealAgents, Runtime: "hollow",
		TestImageBinary: o.TestImage, Binary: o.Exe, Netns: o.Netns, Progress: prefixed(o.Progress, "chaos: up: ")})
	if err != nil {
		return nil, fmt.Errorf("bench: cluster up: %w", err)
	}
	const opTimeout = 5 * time.Second
	c, err := openChaosCluster(lc, opTimeout)
	if err != nil {
		return nil, err
	}
	inj := &injector{c: c, say: say, real: c.realAgents()}
	agents := o.Agents + o.RealAgents
	if slices.Contains(o.Faults, FaultNetem) {
		// tc netem needs the kernel's sch_netem, which a sandbox may lack.
		first := c.servers()[0]
		if err := c.netem(first, true); err != nil {
			o.Faults = slices.DeleteFunc(o.Faults, func(k string) bool { return k == FaultNetem })
			res.Skipped = append(res.Skipped, "netem: not available here ("+err.Error()+")")
			say("skipping netem: %v", err)
		} else if err := c.netem(first, false); err != nil {
			return nil, err
		}
	}
	regs := map[string]*configMapRegister{}
	for _, s := range c.servers() {
		if regs[s], err = newConfigMapRegister(c.configs[s]); err != nil {
			return nil, err
		}
	}
	if err := preflight(ctx, regs[c.servers()[0]]); err != nil {
		return nil, err
	}
	// The node lifecycle timings: restart every server with them (cluster.Up takes no
	// extra server flags); restarts and leader kills later keep them.
	say("restarting the servers with --node-monitor-grace-period %v", o.NodeGrace)
	for _, s := range c.servers() {
		if err := c.kill(s); err != nil {
			return nil, err
		}
	}
	for _, s := range c.servers() {
		if err := c.restart(s, "--node-monitor-grace-period", o.NodeGrace.String(), "--node-monitor-period", "1s"); err != nil {
			return nil, err
		}
	}
	if err := c.waitHealthy(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	if err := preflight(ctx, regs[c.servers()[0]]); err != nil {
		return nil, err
	}
	if slices.Contains(o.Faults, FaultSlowDisk) {
		disk, err := newSlowDisk(c.proc(c.servers()[0]).DataDir)
		if err != nil {
			o.Faults = slices.DeleteFunc(o.Faults, func(k string) bool { return k == FaultSlowDisk })
			res.Skipped = append(res.Skipped, "slow-disk: "+err.Error())
			say("skipping slow-disk: %v", err)
		} else {
			defer disk.close()
			inj.disk = disk
		}
	}

	// The pod workloads and the pod watch run through a client that fails over between
	// servers; the watch outlives the load, for the checks.
	var servers []string
	for _, t := range c.targets {
		servers = append(servers, t.APIURL)
	}
	pcs, err := kubernetes.NewForConfig(failoverConfig(c.configs[c.servers()[0]], servers))
	if err != nil {
		return nil, err
	}
	verbs := newVerbStats()
	tracker := newPodTracker(time.Now())
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchWG sync.WaitGroup
	defer func() { stopWatch(); watchWG.Wait() }()
	watchWG.Go(func() { tracker.run(watchCtx, pcs, chaosNS) })
	// The real agents' containers are sampled from the start to the end of the checks.
	var ctrs *containerSampler
	ctrCtx, stopCtrs := context.WithCancel(ctx)
	var ctrWG sync.WaitGroup
	defer func() { stopCtrs(); ctrWG.Wait() }()
	if roots := c.realCgroupRoots(); len(roots) > 0 {
		ctrs = newContainerSampler(roots)
		ctrWG.Go(func() { ctrs.run(ctrCtx, time.Second) })
	}
	pl := &podLoad{cs: pcs, verbs: verbs, pods: tracker, lanes: o.ChurnLanes, rate: o.PodRate, lifetime: 10 * time.Second,
		tolerate: int64(o.Toleration / time.Second), steady: int32(o.SteadyPer * max(agents, 1)), deleted: map[string]time.Time{}}
	if agents > 0 {
		if err := pl.setup(ctx); err != nil {
			return nil, err
		}
		if err := pl.waitSteady(ctx, 90*time.Second); err != nil {
			return nil, err
		}
		inj.pods, inj.steady = tracker, int(pl.steady)
		inj.rescheduleBound = o.NodeGrace + o.Toleration + 60*time.Second
	}

	plan := planFaults(o.Seed, o.Faults, o.Duration, o.LeaderKills)
	say("load for %v with %d clients per server on %d keys; %d faults planned (seed %d)", o.Duration, o.Clients, o.Keys, len(plan), o.Seed)
	t0 := time.Now()
	load := newRegisterLoad(t0, o.Keys, opTimeout)
	load.verbs = verbs
	inj.t0 = t0
	inj.settled = func(since time.Duration) bool { return load.allWroteSince(c.servers(), since) }
	loadCtx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var wg sync.WaitGroup
	for i, s := range c.servers() {
		for k := range o.Clients {
			wg.Go(func() { load.run(loadCtx, i*o.Clients+k, s, regs[s]) })
		}
	}
	if agents > 0 {
		for lane := range o.ChurnLanes {
			wg.Go(func() { pl.churn(loadCtx, lane) })
		}
		wg.Go(func() { pl.podRate(loadCtx) })
	}
	sampler := newResourceSampler(c.servers(), c.pid)
	wg.Go(func() { res.Resources = sampler.run(loadCtx) })
	wg.Go(func() { inj.run(loadCtx, plan) })
	wg.Go(func() { progress(loadCtx, t0, load, inj, tracker, ctrs, o.Progress) })
	<-loadCtx.Done()
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	say("load done; checking health, final state and history")
	if err := c.waitHealthy(ctx, 60*time.Second); err != nil {
		res.HealthError = err.Error()
	}
	res.Healthy = res.HealthError == ""
	reader := c.leader(ctx)
	if reader == "" {
		reader = c.servers()[0]
	}
	final, err := load.finalReads(ctx, reader, regs[reader])
	if err != nil {
		res.FinalReadError = err.Error()
	}
	chk := checkRegister(load.hist.snapshot(), final, 3*time.Minute)
	res.Check, res.Linearizable = string(chk.Result), chk.Result == "Ok"
	res.Ops, res.DroppedUnknown = chk.Ops, chk.Dropped
	res.LostWrites, res.LostWriteSamples = len(chk.LostWrites), chk.LostWrites[:min(len(chk.LostWrites), 20)]
	succ := load.successTimes(c.servers())
	res.Faults = inj.results()
	for i := range res.Faults {
		setUnavailability(&res.Faults[i], succ, o.Duration)
	}
	res.Timeline = load.tl.points()
	if !res.Linearizable {
		res.explain = explainHistory(chk)
	}
	if agents > 0 {
		lastFault := t0
		for _, f := range res.Faults {
			if f.End.After(lastFault) {
				lastFault = f.End
			}
		}
		say("checking that every Deployment converges within %v of the last fault, and the pods", o.ConvergeBound)
		dc := pl.waitConverged(ctx, lastFault, o.ConvergeBound)
		res.Deployments = &dc
		// Pods asked to go must be gone within the same bound (they may have been asked
		// just before the load ended).
		for deadline := time.Now().Add(o.ConvergeBound); tracker.terminating() > 0 && time.Now().Before(deadline); {
			sleepCtx(ctx, time.Second)
		}
		pc := tracker.check(time.Now(), o.ConvergeBound, pl.deletedApps())
		res.Pods = &pc
		res.NodesNotReady = pl.waitNodesReady(ctx, c.agents(), 60*time.Second)
		if ctrs != nil {
			say("checking the real agents' containers: none of a deleted pod may run %v after its deletion", podGrace+containerStopBound)
			stopCtrs() // the check samples by itself, in step with its reads of the API
			ctrWG.Wait()
			cc := checkRealContainers(ctx, ctrs, tracker, pcs, c.realAgents(), podGrace+containerStopBound)
			res.Containers = &cc
		}
	}
	res.Verbs = verbs.results(o.Duration)

	if o.Peer == "etcd" {
		say("peer: etcd, register workload and leader kills for %v", o.PeerDuration)
		if err := EnsureEtcd(ctx, o.Etcd, o.Progress); err != nil {
			return nil, err
		}
		// etcd's data goes beside the cluster's, and is removed with it.
		res.Peer, err = runEtcdPeer(ctx, o.Etcd, filepath.Join(filepath.Dir(dir), "etcd"), o.PeerDuration, o.Seed, o.Clients, o.Keys, say)
		if err != nil {
			return nil, fmt.Errorf("bench: etcd peer: %w", err)
		}
	}
	return res, nil
}

// preflight waits until a ConfigMap can be written and read: the cluster serves the API.
func preflight(ctx context.Context, r *configMapRegister) error {
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = r.create(octx, "chaos-preflight", "x")
		if errors.Is(err, errCASFailed) {
			err = nil // there from an earlier preflight
		}
		if err == nil {
			_, _, err = r.get(octx, "chaos-preflight")
		}
		cancel()
		if err == nil {
			return nil
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
	return fmt.Errorf("bench: the API does not take writes: %w", err)
}

// progress prints one line every five seconds: phase, fault in effect, ops/s and errors.
func progress(ctx context.Context, t0 time.Time, l *registerLoad, inj *injector, pt *podTracker, ctrs *containerSampler, w io.Writer) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			ops, errs := l.tl.rate(5)
			real := ""
			if ctrs != nil {
				real = fmt.Sprintf(" real-containers=%d", ctrs.log.running())
			}
			fmt.Fprintf(w, "chaos: [%4.0fs] phase=load fault=%s ops/s=%.0f errors/s=%.1f errors=%d pods=%d terminating=%d%s\n",
				time.Since(t0).Seconds(), inj.inEffect(), ops, errs, l.errs.Load(), pt.seen(), pt.terminating(), real)
		}
	}
}

// prefixed writes each line with a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func prefixed(w io.Writer, p string) io.Writer { return &prefixWriter{w, p} }

func (p *prefixWriter) Write(b []byte) (int, error) {
	_, err := fmt.Fprintf(p.w, "%s%s", p.prefix, b)
	return len(b), err
}

// keepLogs copies each process's log (DIR/<name>/*.log) to to/<name>.log.
func keepLogs(dir, to string) {
	if to == "" {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
	if len(logs) == 0 || os.MkdirAll(to, 0o755) != nil {
		return
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(to, filepath.Base(filepath.Dir(l))+".log"), b, 0o644)
		}
	}
}
