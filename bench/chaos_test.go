package bench

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

func TestFaultScheduleIsReproducibleFromTheSeed(t *testing.T) {
	a := planFaults(42, AllFaults, 5*time.Minute, 20)
	b := planFaults(42, AllFaults, 5*time.Minute, 20)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different schedules")
	}
	if c := planFaults(43, AllFaults, 5*time.Minute, 20); slices.Equal(a, c) {
		t.Fatal("different seeds, same schedule")
	}
	kinds := map[string]int{}
	for i, f := range a {
		kinds[f.Kind]++
		if i > 0 && f.At <= a[i-1].At {
			t.Fatalf("fault %d at %v is not after %v", i, f.At, a[i-1].At)
		}
	}
	if kinds[FaultKillLeader] < 20 {
		t.Fatalf("%d leader kills, want at least 20", kinds[FaultKillLeader])
	}
	for _, k := range AllFaults {
		if kinds[k] == 0 {
			t.Fatalf("no %s in the schedule: %v", k, kinds)
		}
	}
}

func TestUnavailabilityIsTheGapAroundTheFault(t *testing.T) {
	s := time.Second
	log := successLog{
		"a": {1 * s, 2 * s, 5 * s, 6 * s},             // killed: back at 5s
		"b": {1 * s, 2*s + s/2, 3*s + s/2, 4 * s},     // spared: 1s gap around 3s
		"c": {1 * s, 2*s + s/4, 3*s + s/4, 3*s + s/2}, // spared: 1s gap
	}
	worst, targeted, per := unavailability(log, 3*s, 3*s, 10*s, []string{"a"})
	if worst != s {
		t.Fatalf("worst = %v, want 1s (the spared servers' gap)", worst)
	}
	if per["a"] != 3*s || targeted != 3*s {
		t.Fatalf("the killed server's gap = %v (targeted %v), want 3s", per["a"], targeted)
	}
	if worst, _, _ := unavailability(log, 3*s, 3*s, 10*s, []string{"a", "b", "c"}); worst != 3*s {
		t.Fatalf("all targeted: worst = %v, want 3s", worst)
	}
	withDead := successLog{
		"a": {9 * s, 12 * s},
		"b": {9*s + s/2, 11 * s},
		"d": {s / 2}, // left dead by an earlier fault: says nothing about this one
	}
	if worst, _, _ := unavailability(withDead, 10*s, 10*s, 20*s, []string{"a"}); worst != s+s/2 {
		t.Fatalf("with a server long dead: worst = %v, want 1.5s (b's gap)", worst)
	}
	if d := longestGap([]time.Duration{s}, 2*s, 2*s, 10*s); d != 9*s {
		t.Fatalf("never recovered: gap = %v, want 9s", d)
	}
	if p := percentile([]time.Duration{5, 1, 3, 2, 4}, 0.5); p != 3 {
		t.Fatalf("median = %v", p)
	}
}

func op(client int, call, ret int64, in regInput, out regOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func TestCheckerAcceptsALinearizableHistory(t *testing.T) {
	h := []porcupine.Operation{
		op(1, 0, 10, regInput{Op: "cas", Key: "k", Value: "a"}, regOutput{OK: true}),
		op(2, 5, 15, regInput{Op: "get", Key: "k"}, regOutput{Value: "a"}),
		op(2, 20, 30, regInput{Op: "cas", Key: "k", Value: "b", Expect: "a"}, regOutput{OK: true}),
		op(1, 25, 35, regInput{Op: "cas", Key: "k", Value: "c", Expect: "a"}, regOutput{}), // conflict
		op(3, 36, unknownReturn, regInput{Op: "cas", Key: "k", Value: "d", Expect: "b"}, regOutput{Unknown: true}),
		op(1, 40, 50, regInput{Op: "get", Key: "k"}, regOutput{Value: "b"}),
	}
	chk := checkRegister(h, map[string]string{"k": "b"}, 10*time.Second)
	if chk.Result != porcupine.Ok || len(chk.LostWrites) != 0 {
		t.Fatalf("result %s, lost %v", chk.Result, chk.LostWrites)
	}
	if chk.Dropped != 1 {
		t.Fatalf("dropped %d unobserved unknown writes, want 1", chk.Dropped)
	}
}

func TestCheckerRejectsAStaleReadAndALostWrite(t *testing.T) {
	h := []porcupine.Operation{
		op(1, 0, 10, regInput{Op: "cas", Key: "k", Value: "a"}, regOutput{OK: true}),
		op(1, 20, 30, regInput{Op: "cas", Key: "k", Value: "b", Expect: "a"}, regOutput{OK: true}),
		op(2, 40, 50, regInput{Op: "get", Key: "k"}, regOutput{Value: "a"}), // stale: b was acknowledged
	}
	chk := checkRegister(h, map[string]string{"k": "a"}, 10*time.Second)
	if chk.Result != porcupine.Illegal {
		t.Fatalf("a stale read passed: %s", chk.Result)
	}
	if len(chk.LostWrites) != 1 {
		t.Fatalf("lost writes %v, want the write of b", chk.LostWrites)
	}
}

// A write that was in flight when the fault hit, acknowledged just after it, must not hide
// the outage that follows; nor may a disruption when a partition heals.
func TestUnavailabilityCoversTheWholeFaultWindow(t *testing.T) {
	s := time.Second
	times := []time.Duration{9 * s, 10*s + s/10, 14 * s, 14*s + s/10, 20 * s, 23 * s, 23*s + s/10}
	// Fault from 10s, healthy again at 21s: gaps 10.1-14 (3.9s) and 14.1-20 (5.9s) and 20-23
	// (3s, starts inside the window) overlap it.
	if d := longestGap(times, 10*s, 21*s, 30*s); d != 5*s+9*s/10 {
		t.Fatalf("longest gap = %v, want 5.9s", d)
	}
	// A window of an instant is the old measure (to the first write after the start).
	if d := longestGap(times, 10*s, 10*s, 30*s); d != s+s/10 {
		t.Fatalf("window of an instant = %v, want 1.1s", d)
	}
}

func TestPlanGivesKillAgentALongSlotAndKeepsTwentyLeaderKills(t *testing.T) {
	plan := planFaults(7, AllFaults, 5*time.Minute, 20)
	agents, leaders := 0, 0
	for i, f := range plan {
		switch f.Kind {
		case FaultKillAgent:
			agents++
			if i+1 < len(plan) && plan[i+1].At-f.At < 30*time.Second {
				t.Fatalf("kill-agent slot is %v, want room for the eviction", plan[i+1].At-f.At)
			}
		case FaultKillLeader:
			leaders++
		}
		if f.At > 5*time.Minute-8*time.Second {
			t.Fatalf("fault %d at %v, after the cool-down starts", i, f.At)
		}
	}
	if agents != 1 || leaders < 20 {
		t.Fatalf("%d kill-agent, %d kill-leader; want 1 and at least 20", agents, leaders)
	}
}

func TestPodTrackerCatchesADoubleBindingAndAPodLeftAfterDeletion(t *testing.T) {
	now := time.Now()
	pt := newPodTracker(now)
	pod := func(uid, node string, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-" + uid, UID: types.UID(uid), Labels: map[string]string{"app": "a"}},
			Spec: corev1.PodSpec{NodeName: node}}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{Time: now}
		}
		return p
	}
	pt.observe(pod("1", "", false), false, now)
	pt.observe(pod("1", "n1", false), false, now)
	pt.observe(pod("1", "n1", false), false, now)
	pt.observe(pod("2", "n2", false), false, now)
	pt.observe(pod("2", "n2", true), false, now)
	pt.observe(pod("2", "n2", true), true, now) // gone: fine
	pt.observe(pod("3", "n1", true), false, now)
	pc := pt.check(now.Add(time.Minute), 2*time.Minute, nil)
	if len(pc.DoubleBound) != 0 || len(pc.LeftAfterDeletion) != 0 {
		t.Fatalf("a clean history failed: %+v", pc)
	}
	pt.observe(pod("1", "n2", false), false, now) // rebound: the bug
	pc = pt.check(now.Add(3*time.Minute), 2*time.Minute, nil)
	if len(pc.DoubleBound) != 1 {
		t.Fatalf("double binding not caught: %+v", pc)
	}
	if len(pc.LeftAfterDeletion) != 1 {
		t.Fatalf("pod 3, terminating for 3 minutes, not caught: %+v", pc)
	}
	// The pods of a Deployment deleted long ago, never asked to terminate (no GC), count too.
	pc = pt.check(now.Add(3*time.Minute), 2*time.Minute, map[string]time.Time{"a": now})
	if len(pc.LeftAfterDeletion) != 2 {
		t.Fatalf("pods of a deleted Deployment not caught: %+v", pc.LeftAfterDeletion)
	}
}

func TestDeploymentConvergence(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2))},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}}
	if why := notConverged(d); why != "" {
		t.Fatalf("converged deployment: %s", why)
	}
	for name, mut := range map[string]func(*appsv1.Deployment){
		"stale status":  func(d *appsv1.Deployment) { d.Status.ObservedGeneration = 2 },
		"one not ready": func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 1 },
		"old pod left":  func(d *appsv1.Deployment) { d.Status.Replicas = 3 },
		"not updated":   func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1 },
	} {
		c := d.DeepCopy()
		mut(c)
		if notConverged(c) == "" {
			t.Errorf("%s: taken as converged", name)
		}
	}
}

func TestProcStatParsing(t *testing.T) {
	stat := "1234 (skiff server) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 123456789 2560 18446744073709551615"
	ticks, rss, err := parseProcStat(stat, 4096)
	if err != nil || ticks != 300 || rss != 2560*4096 {
		t.Fatalf("ticks %d rss %d err %v", ticks, rss, err)
	}
}

func TestFailoverMovesOnFromADeadOrFailingServer(t *testing.T) {
	var hits [3]atomic.Int32
	mk := func(i, code int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits[i].Add(1)
			w.WriteHeader(code)
		}))
	}
	failing, good := mk(1, http.StatusServiceUnavailable), mk(2, http.StatusOK)
	defer failing.Close()
	defer good.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // connection refused
	cfg := failoverConfig(&rest.Config{Host: dead.URL}, []string{dead.URL, failing.URL, good.URL})
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: rt}
	ok := 0
	for range 5 {
		if resp, err := hc.Get(dead.URL + "/x"); err == nil {
			if resp.StatusCode == http.StatusOK {
				ok++
			}
			resp.Body.Close()
		}
	}
	if hits[1].Load() != 1 || hits[2].Load() != 3 || ok != 3 {
		t.Fatalf("failing server hit %d times, good one %d, %d OK; want 1, 3, 3", hits[1].Load(), hits[2].Load(), ok)
	}
}

func TestNodesNotReady(t *testing.T) {
	node := func(name string, st corev1.ConditionStatus) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
	}
	got := nodesNotReady([]corev1.Node{node("a", corev1.ConditionTrue), node("b", corev1.ConditionUnknown)}, []string{"a", "b", "c"})
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("not ready = %v, want [b c] (unknown, missing)", got)
	}
}
