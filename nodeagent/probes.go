package nodeagent

import (
	"context"
	"errors"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// podProbes runs the startup, liveness and readiness probes of a pod's
// running containers and keeps their results, which the worker reads when
// it decides (liveness, startup) and reports (ready, started). A change of
// result wakes the worker.
type podProbes struct {
	w  *podWorker
	mu sync.Mutex
	// byID holds the probing of each running container.
	byID map[string]*containerProbes
}

type containerProbes struct {
	cancel  context.CancelFunc
	done    chan struct{}
	started bool
	ready   bool
	kill    string // why the container must be killed, once it must
}

var _ probeView = (*podProbes)(nil)

func newPodProbes(w *podWorker) *podProbes {
	return &podProbes{w: w, byID: map[string]*containerProbes{}}
}

func (p *podProbes) get(id string) *containerProbes {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[id]
}

// mustKill implements probeView.
func (p *podProbes) mustKill(id string) (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cp := p.byID[id]; cp != nil && cp.kill != "" {
		return true, cp.kill
	}
	return false, ""
}

// ready implements probeView: without a readiness probe a started
// container is ready.
func (p *podProbes) ready(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	cp := p.byID[id]
	return cp != nil && cp.ready && cp.kill == ""
}

// started implements probeView.
func (p *podProbes) started(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	cp := p.byID[id]
	return cp != nil && cp.started
}

// sync starts probing newly running containers and stops probing the
// ones that are no longer running.
func (p *podProbes) sync(ctx context.Context, pod *corev1.Pod, recs podRecords) {
	running := map[string]*corev1.Container{}
	for _, rs := range recs {
		if len(rs) > 0 && rs[0].running() {
			if c := findContainer(pod, rs[0].Name); c != nil {
				running[rs[0].ID] = c
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, cp := range p.byID {
		if running[id] == nil {
			cp.cancel()
			delete(p.byID, id)
		}
	}
	for id, c := range running {
		if p.byID[id] != nil {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		cp := &containerProbes{cancel: cancel, done: make(chan struct{})}
		p.byID[id] = cp
		isInit := false
		for i := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name == c.Name {
				isInit = true
			}
		}
		// Init containers are not probed; the hollow runtime has
		// nothing to probe, so its containers pass.
		if isInit || p.w.a.hollow || (c.StartupProbe == nil && c.LivenessProbe == nil && c.ReadinessProbe == nil) {
			cp.started, cp.ready = true, true
			close(cp.done)
			continue
		}
		p.w.wg.Add(1)
		go func() {
			defer p.w.wg.Done()
			defer close(cp.done)
			p.probeContainer(pctx, pod, c, id, cp)
		}()
	}
}

// stopAll stops every container's probing.
func (p *podProbes) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, cp := range p.byID {
		cp.cancel()
		delete(p.byID, id)
	}
}

// set changes a result under the lock and wakes the worker if it changed.
func (p *podProbes) set(fn func() bool) {
	p.mu.Lock()
	changed := fn()
	p.mu.Unlock()
	if changed {
		p.w.poke()
	}
}

// probeContainer runs the startup probe until it succeeds, then liveness
// and readiness side by side, each with Kubernetes' defaults (period 10 s,
// timeout 1 s, success 1, failure 3).
func (p *podProbes) probeContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, cp *containerProbes) {
	if c.StartupProbe != nil {
		ok := p.loop(ctx, pod, c, id, c.StartupProbe, func(success bool, msg string) bool {
			if success {
				p.set(func() bool { cp.started = true; return true })
				return false // stop: liveness and readiness take over
			}
			p.set(func() bool { cp.kill = "Startup probe failed: " + msg; return true })
			return false
		}, true)
		if !ok {
			return
		}
	} else {
		p.set(func() bool { cp.started = true; return true })
	}
	if c.ReadinessProbe == nil {
		p.set(func() bool { cp.ready = true; return true })
	}
	var wg sync.WaitGroup
	if c.LivenessProbe != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx, pod, c, id, c.LivenessProbe, func(success bool, msg string) bool {
				if !success {
					p.set(func() bool { cp.kill = "Liveness probe failed: " + msg; return true })
					return false
				}
				return true
			}, false)
		}()
	}
	if c.ReadinessProbe != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx, pod, c, id, c.ReadinessProbe, func(success bool, _ string) bool {
				p.set(func() bool {
					changed := cp.ready != success
					cp.ready = success
					return changed
				})
				return true
			}, false)
		}()
	}
	wg.Wait()
}

// loop probes every period and calls report when the result crosses a
// threshold (successThreshold successes or failureThreshold failures in a
// row), continuing while report returns true. once makes it stop at the
// first crossing. It returns false if ctx ended or a failure was reported.
func (p *podProbes) loop(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, pr *corev1.Probe, report func(success bool, msg string) bool, once bool) bool {
	period := secondsOr(pr.PeriodSeconds, 10)
	timeout := secondsOr(pr.TimeoutSeconds, 1)
	successTh := int(max(pr.SuccessThreshold, 1))
	failureTh := int(max(pr.FailureThreshold, 0))
	if failureTh == 0 {
		failureTh = 3
	}
	if d := time.Duration(pr.InitialDelaySeconds) * time.Second; d > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
		}
	}
	t := time.NewTicker(period)
	defer t.Stop()
	var successes, failures int
	last := -1 // last reported: 1 success, 0 failure
	for {
		err := p.w.runProbe(ctx, pod, c, id, pr.ProbeHandler, timeout)
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errUnsupportedProbe) {
			p.w.a.log.Warn("probe type not supported; treated as passing", "container", id)
			err = nil
		}
		if err == nil {
			successes, failures = successes+1, 0
			if successes >= successTh && last != 1 {
				last = 1
				if !report(true, "") {
					return true
				}
			}
		} else {
			failures, successes = failures+1, 0
			if failures >= failureTh && last != 0 {
				last = 0
				if !report(false, err.Error()) {
					return false
				}
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func secondsOr(n int32, def int) time.Duration {
	if n <= 0 {
		return time.Duration(def) * time.Second
	}
	return time.Duration(n) * time.Second
}
