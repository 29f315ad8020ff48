package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

// FaultResult is one injected fault as result.json reports it.
type FaultResult struct {
	System  string    `json:"system"` // skiff or etcd
	Kind    string    `json:"kind"`
	Targets []string  `json:"targets"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	StartS  float64   `json:"start_s"` // from the start of the load
	EndS    float64   `json:"end_s"`
	// UnavailableMs is the longest time without an acknowledged write, overlapping the
	// fault and its recovery, among the servers the fault spared (all for restart-all);
	// TargetedMs the same on the servers it hit (for a partition, at least its length).
	UnavailableMs float64            `json:"unavailable_ms"`
	TargetedMs    float64            `json:"targeted_unavailable_ms"`
	PerServerMs   map[string]float64 `json:"per_server_unavailable_ms"`
	ElectionMs    float64            `json:"leader_election_ms,omitempty"`
	RecoveredMs   float64            `json:"recovered_ms"` // from start to healthy again
	// A killed agent: how many steady pods it ran, and the time from the kill until as
	// many were ready on other nodes again (evicted and replaced).
	PodsOnTarget int     `json:"pods_on_target,omitempty"`
	RescheduleMs float64 `json:"reschedule_ms,omitempty"`
	Applied      bool    `json:"applied"` // false: injecting it failed; left out of the figures
	Error        string  `json:"error,omitempty"`
}

// injector runs a fault schedule against the skiff cluster, one fault at a time, and
// records each with its start and end. current says which fault is in effect, for the
// progress line.
type injector struct {
	c   *chaosCluster
	t0  time.Time
	say func(string, ...any)
	// pods and steady let a kill-agent fault wait for the steady Deployment's pods to run
	// elsewhere, up to rescheduleBound; disk is the slow-disk throttle (nil: none).
	pods            *podTracker
	steady          int
	rescheduleBound time.Duration
	disk            *slowDisk
	// real are the agents that run real containers: a kill-agent fault hits one of them
	// when there are any.
	real []string
	// settled reports whether every server has acknowledged a write since the given time
	// (from t0); nil: do not wait. The next fault waits for it, so that no fault's
	// unavailability window holds the tail of the one before.
	settled func(since time.Duration) bool

	mu      sync.Mutex
	current string
	done    []FaultResult
}

func (in *injector) setCurrent(s string) {
	in.mu.Lock()
	in.current = s
	in.mu.Unlock()
}

func (in *injector) inEffect() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.current == "" {
		return "none"
	}
	return in.current
}

func (in *injector) results() []FaultResult {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.done)
}

// run plays the schedule until it ends or ctx is done.
func (in *injector) run(ctx context.Context, plan []plannedFault) {
	for _, pf := range plan {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(in.t0.Add(pf.At))):
		}
		r := in.inject(ctx, pf)
		in.mu.Lock()
		in.done = append(in.done, r)
		in.current = ""
		in.mu.Unlock()
		if in.settled != nil {
			since := time.Since(in.t0)
			for i := 0; i < 100 && !in.settled(since) && ctx.Err() == nil; i++ {
				sleepCtx(ctx, 100*time.Millisecond)
			}
		}
		if r.Error != "" {
			in.say("fault %s on %v: %s", r.Kind, r.Targets, r.Error)
		} else {
			in.say("fault %s on %v: held %.1fs, election %.0f ms, healthy after %.0f ms", r.Kind, r.Targets, r.EndS-r.StartS, r.ElectionMs, r.RecoveredMs)
		}
	}
}

// inject applies one fault, holds it, recovers, and waits for the cluster to be healthy.
func (in *injector) inject(ctx context.Context, pf plannedFault) FaultResult {
	r := FaultResult{System: "skiff", Kind: pf.Kind}
	servers := in.c.servers()
	leader := in.c.leader(ctx)
	pick := func(from []string) string {
		if len(from) == 0 {
			return ""
		}
		return from[pf.Pick%uint64(len(from))]
	}
	followers := slices.DeleteFunc(slices.Clone(servers), func(s string) bool { return s == leader })
	var apply, recover func() error
	switch pf.Kind {
	case FaultKillLeader, FaultKillFollower:
		t := leader
		if pf.Kind == FaultKillFollower {
			t = pick(followers)
		}
		r.Targets = []string{t}
		apply = func() error { return in.c.kill(t) }
		recover = func() error { return in.c.restart(t) }
	case FaultPause:
		t := pick(servers)
		r.Targets = []string{t}
		apply = func() error { return in.c.signal(t, syscall.SIGSTOP) }
		recover = func() error { return in.c.signal(t, syscall.SIGCONT) }
	case FaultRestartAll:
		r.Targets = servers
		apply = func() error {
			for _, s := range servers {
				if err := in.c.kill(s); err != nil {
					return err
				}
			}
			return nil
		}
		recover = func() error {
			for _, s := range servers {
				if err := in.c.restart(s); err != nil {
					return err
				}
			}
			return nil
		}
	case FaultKillAgent:
		t := pick(in.c.agents())
		if in.pods != nil {
			// The node with the most steady pods, so that there is something to reschedule;
			// a real agent's when one has any: its containers run on without it, and the
			// restarted agent must adopt them and stop those of the pods evicted meanwhile,
			// which a hollow agent's kill does not exercise.
			t, r.PodsOnTarget = in.pods.busiestNode(steadyApp, in.c.agents())
			if rt, n := in.pods.busiestNode(steadyApp, in.real); n > 0 {
				t, r.PodsOnTarget = rt, n
			}
		}
		r.Targets = []string{t}
		apply = func() error { return in.c.kill(t) }
		recover = func() error { return in.c.restart(t) }
	case FaultPartition, FaultPartitionPrimary:
		t := pick(followers)
		if pf.Kind == FaultPartitionPrimary {
			t = leader
		}
		r.Targets = []string{t}
		apply = func() error { return cluster.SetLinkUp(in.c.proc(t), false) }
		recover = func() error { return cluster.SetLinkUp(in.c.proc(t), true) }
	case FaultNetem:
		t := pick(servers)
		r.Targets = []string{t}
		apply = func() error { return in.c.netem(t, true) }
		recover = func() error { return in.c.netem(t, false) }
	case FaultSlowDisk:
		// On the leader: every commit waits for its log write.
		t := leader
		r.Targets = []string{t}
		pid := in.c.pid(t)
		apply = func() error {
			if in.disk == nil {
				return fmt.Errorf("no slow-disk cgroup")
			}
			return in.disk.slow(pid, true)
		}
		recover = func() error {
			if in.disk == nil {
				return nil
			}
			return in.disk.slow(pid, false)
		}
	default:
		r.Error = "unknown fault"
		return r
	}
	if slices.Contains(r.Targets, "") {
		r.Error = fmt.Sprintf("no target (leader %q)", leader)
		return r
	}
	in.setCurrent(fmt.Sprintf("%s(%v)", pf.Kind, r.Targets))
	r.Start = time.Now()
	r.StartS = r.Start.Sub(in.t0).Seconds()
	if err := apply(); err != nil {
		r.Error = err.Error()
		_ = recover()
		r.End = time.Now()
		r.EndS = r.End.Sub(in.t0).Seconds()
		return r
	}
	r.Applied = true
	// Election time: from the fault to a leader among the servers it did not touch, when it
	// removed the leader (restart-all: from the restart to any leader).
	lostLeader := slices.Contains(r.Targets, leader) && pf.Kind != FaultKillAgent && pf.Kind != FaultNetem && pf.Kind != FaultSlowDisk
	var elected time.Time
	if lostLeader && pf.Kind != FaultRestartAll {
		spared := slices.DeleteFunc(slices.Clone(servers), func(s string) bool { return slices.Contains(r.Targets, s) })
		if _, at, err := in.c.waitLeaderAmong(ctx, spared, leader, pf.Hold+10*time.Second); err == nil {
			elected = at
		}
	}
	if pf.Kind == FaultKillAgent && in.pods != nil {
		in.waitRescheduled(ctx, &r)
	}
	sleepCtx(ctx, time.Until(r.Start.Add(pf.Hold)))
	restartAt := time.Now()
	if err := recover(); err != nil {
		r.Error = err.Error()
	}
	r.End = time.Now()
	r.EndS = r.End.Sub(in.t0).Seconds()
	if pf.Kind == FaultRestartAll {
		if _, at, err := in.c.waitLeaderAmong(ctx, servers, "", 30*time.Second); err == nil {
			r.ElectionMs = ms(at.Sub(restartAt))
		}
	} else if !elected.IsZero() {
		r.ElectionMs = ms(elected.Sub(r.Start))
	}
	if err := in.c.waitHealthy(ctx, 60*time.Second); err != nil && r.Error == "" {
		r.Error = err.Error() + in.c.exitedAfterRestart(r.Targets)
	}
	r.RecoveredMs = ms(time.Since(r.Start))
	return r
}

// waitRescheduled holds a kill-agent fault until the steady Deployment has all its pods
// ready on other nodes again, and records how long that took.
func (in *injector) waitRescheduled(ctx context.Context, r *FaultResult) {
	deadline := r.Start.Add(in.rescheduleBound)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if in.pods.readyOffNode(steadyApp, r.Targets[0]) >= in.steady {
			r.RescheduleMs = ms(time.Since(r.Start))
			return
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	if ctx.Err() == nil {
		r.Error = fmt.Sprintf("the steady pods were not all ready off %s within %v (%d of %d)",
			r.Targets[0], in.rescheduleBound, in.pods.readyOffNode(steadyApp, r.Targets[0]), in.steady)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
