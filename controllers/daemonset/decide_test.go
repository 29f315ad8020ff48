package daemonset

import (
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func daemon(mut ...func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "kube-system", Generation: 2},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "agent:v1"}}}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one, MaxSurge: &zero}},
		},
	}
	for _, m := range mut {
		m(ds)
	}
	return ds
}

func node(name string, mut ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	for _, m := range mut {
		m(n)
	}
	return n
}

func taint(key string, effect corev1.TaintEffect) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: effect}) }
}

func TestShouldRunHonoursSelectorAffinityAndTaints(t *testing.T) {
	withSelector := func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"} }
	withAffinity := func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}}}}}
	}
	tolerateGPU := func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}
	}
	labelled := func(k, v string) func(*corev1.Node) { return func(n *corev1.Node) { n.Labels[k] = v } }
	cases := []struct {
		name           string
		ds             *appsv1.DaemonSet
		node           *corev1.Node
		run, continues bool
	}{
		{"plain node", daemon(), node("n"), true, true},
		{"selector matches", daemon(withSelector), node("n", labelled("disk", "ssd")), true, true},
		{"selector does not match", daemon(withSelector), node("n"), false, false},
		{"affinity does not match", daemon(withAffinity), node("n", labelled("zone", "b")), false, false},
		{"affinity matches", daemon(withAffinity), node("n", labelled("zone", "a")), true, true},
		{"NoSchedule taint: no new pod, keep the old one", daemon(), node("n", taint("dedicated", corev1.TaintEffectNoSchedule)), false, true},
		{"NoExecute taint: evicted", daemon(), node("n", taint("dedicated", corev1.TaintEffectNoExecute)), false, false},
		{"tolerated taint", daemon(tolerateGPU), node("n", taint("gpu", corev1.TaintEffectNoExecute)), true, true},
		{"not-ready is tolerated by default", daemon(), node("n", taint(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)), true, true},
		{"unreachable is tolerated by default", daemon(), node("n", taint(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)), true, true},
		{"cordoned node still runs daemons", daemon(), node("n", taint(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)), true, true},
		{"memory pressure tolerated", daemon(), node("n", taint(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)), true, true},
		{"network-unavailable only for hostNetwork", daemon(), node("n", taint(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)), false, true},
		{"hostNetwork tolerates network-unavailable", daemon(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.HostNetwork = true }),
			node("n", taint(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)), true, true},
		{"nodeName elsewhere", daemon(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeName = "other" }), node("n"), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run, cont := ShouldRun(tc.node, tc.ds)
			if run != tc.run || cont != tc.continues {
				t.Fatalf("ShouldRun = %v, %v; want %v, %v", run, cont, tc.run, tc.continues)
			}
		})
	}
}

func TestPinToNodeIsReadBackByTargetNode(t *testing.T) {
	ds := daemon()
	spec := ds.Spec.Template.Spec.DeepCopy()
	PinToNode(spec, "node-7")
	if got := TargetNode(&corev1.Pod{Spec: *spec}); got != "node-7" {
		t.Fatalf("target %q", got)
	}
	AddDaemonTolerations(spec)
	AddDaemonTolerations(spec)
	if len(spec.Tolerations) != 6 {
		t.Fatalf("tolerations added twice or missing: %v", spec.Tolerations)
	}
}

type podOpt func(*corev1.Pod)

func pod(name, hash string, age time.Duration, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system",
		Labels: map[string]string{"app": "agent", HashLabel: hash}, CreationTimestamp: metav1.NewTime(now.Add(-age))},
		Status: corev1.PodStatus{Phase: corev1.PodPending}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func ready(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
		LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}}
}
func failed(p *corev1.Pod)      { p.Status.Phase = corev1.PodFailed }
func succeeded(p *corev1.Pod)   { p.Status.Phase = corev1.PodSucceeded }
func terminating(p *corev1.Pod) { t := metav1.NewTime(now); p.DeletionTimestamp = &t }

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

func TestPlanNode(t *testing.T) {
	surge := func(ds *appsv1.DaemonSet) {
		one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxSurge: &one, MaxUnavailable: &zero}
	}
	cases := []struct {
		name                  string
		ds                    *appsv1.DaemonSet
		run, cont             bool
		pods                  []*corev1.Pod
		create                bool
		deleted, deleteFailed []string
	}{
		{name: "eligible and empty: create", ds: daemon(), run: true, cont: true, create: true},
		{name: "one running: nothing", ds: daemon(), run: true, cont: true, pods: []*corev1.Pod{pod("a", "h2", time.Minute, ready)}},
		{name: "terminating pod: wait, no create", ds: daemon(), run: true, cont: true, pods: []*corev1.Pod{pod("a", "h2", time.Minute, terminating)}},
		{name: "two: keep the oldest", ds: daemon(), run: true, cont: true,
			pods: []*corev1.Pod{pod("young", "h2", time.Minute, ready), pod("old", "h2", time.Hour, ready)}, deleted: []string{"young"}},
		{name: "failed pod: deleted with back-off", ds: daemon(), run: true, cont: true,
			pods: []*corev1.Pod{pod("a", "h2", time.Minute, failed)}, deleteFailed: []string{"a"}},
		{name: "succeeded pod deleted", ds: daemon(), run: true, cont: true,
			pods: []*corev1.Pod{pod("a", "h2", time.Minute, succeeded)}, deleted: []string{"a"}},
		{name: "not eligible any more: delete all", ds: daemon(), pods: []*corev1.Pod{pod("a", "h2", time.Minute, ready), pod("b", "h2", time.Minute, terminating)},
			deleted: []string{"a"}},
		{name: "NoSchedule taint: keep", ds: daemon(), cont: true, pods: []*corev1.Pod{pod("a", "h2", time.Minute, ready)}},
		{name: "surge: new not yet available keeps old", ds: daemon(surge), run: true, cont: true,
			pods: []*corev1.Pod{pod("old", "h1", time.Hour, ready), pod("new", "h2", time.Second)}},
		{name: "surge: new available retires old", ds: daemon(surge), run: true, cont: true,
			pods: []*corev1.Pod{pod("old", "h1", time.Hour, ready), pod("new", "h2", time.Second, ready)}, deleted: []string{"old"}},
		{name: "surge: old not ready retires old", ds: daemon(surge), run: true, cont: true,
			pods: []*corev1.Pod{pod("old", "h1", time.Hour), pod("new", "h2", time.Second)}, deleted: []string{"old"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := PlanNode(tc.ds, NodeState{Node: node("n"), Pods: tc.pods, ShouldRun: tc.run, ShouldContinue: tc.cont}, "h2", now)
			if a.Create != tc.create || !slices.Equal(names(a.Delete), tc.deleted) || !slices.Equal(names(a.DeleteFailed), tc.deleteFailed) {
				t.Fatalf("got create=%v delete=%v failed=%v; want %v %v %v", a.Create, names(a.Delete), names(a.DeleteFailed),
					tc.create, tc.deleted, tc.deleteFailed)
			}
		})
	}
}

// states builds n eligible nodes whose pods are given by spec: "o" old available, "O" old
// unavailable, "n" new available, "N" new unavailable, "-" none, "on" old and new.
func states(spec ...string) []NodeState {
	var out []NodeState
	for i, s := range spec {
		name := fmt.Sprintf("node-%d", i)
		var pods []*corev1.Pod
		for j, c := range s {
			pn := fmt.Sprintf("%s-%d", name, j)
			switch c {
			case 'o':
				pods = append(pods, pod(pn, "h1", time.Hour, ready))
			case 'O':
				pods = append(pods, pod(pn, "h1", time.Hour))
			case 'n':
				pods = append(pods, pod(pn, "h2", time.Minute, ready))
			case 'N':
				pods = append(pods, pod(pn, "h2", time.Minute))
			}
		}
		out = append(out, NodeState{Node: node(name), Pods: pods, ShouldRun: true, ShouldContinue: true})
	}
	return out
}

func TestPlanRollingUpdate(t *testing.T) {
	strategy := func(surge, unavail string) func(*appsv1.DaemonSet) {
		return func(ds *appsv1.DaemonSet) {
			s, u := intstr.Parse(surge), intstr.Parse(unavail)
			ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxSurge: &s, MaxUnavailable: &u}
		}
	}
	cases := []struct {
		name    string
		ds      *appsv1.DaemonSet
		nodes   []NodeState
		deleted []string
		onto    []string
	}{
		{name: "maxUnavailable 1: one old pod at a time", ds: daemon(), nodes: states("o", "o", "o"), deleted: []string{"node-0-0"}},
		{name: "a new pod still starting uses the budget", ds: daemon(), nodes: states("N", "o", "o")},
		{name: "a missing pod uses the budget", ds: daemon(), nodes: states("-", "o", "o")},
		{name: "next old pod once the new one is available", ds: daemon(), nodes: states("n", "o", "o"), deleted: []string{"node-1-0"}},
		{name: "unavailable old pods are replaced regardless", ds: daemon(), nodes: states("N", "O", "O"), deleted: []string{"node-1-0", "node-2-0"}},
		{name: "maxUnavailable 50% of 4 = 2", ds: daemon(strategy("0", "50%")), nodes: states("o", "o", "o", "o"), deleted: []string{"node-0-0", "node-1-0"}},
		{name: "done: nothing", ds: daemon(), nodes: states("n", "n", "n")},
		{name: "surge 1: a new pod beside the first old one", ds: daemon(strategy("1", "0")), nodes: states("o", "o"), onto: []string{"node-0"}},
		{name: "surge: waiting for the new pod", ds: daemon(strategy("1", "0")), nodes: states("oN", "o")},
		{name: "surge: new available, old goes, next node surges", ds: daemon(strategy("1", "0")), nodes: states("on", "o"),
			deleted: []string{"node-0-0"}, onto: []string{"node-1"}},
		{name: "surge: unavailable old pods get their new pod at once", ds: daemon(strategy("1", "0")), nodes: states("oN", "O", "O"),
			onto: []string{"node-1", "node-2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanRollingUpdate(tc.ds, tc.nodes, "h2", now)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(plan.Delete), tc.deleted) || !slices.Equal(plan.CreateOnto, tc.onto) {
				t.Fatalf("delete %v onto %v; want %v %v", names(plan.Delete), plan.CreateOnto, tc.deleted, tc.onto)
			}
		})
	}
}

func TestStatusCountsWhatKubectlReads(t *testing.T) {
	nodes := states("n", "o", "N", "-")
	nodes = append(nodes, NodeState{Node: node("tainted"), Pods: []*corev1.Pod{pod("x", "h2", time.Minute, ready)}})
	st := Status(daemon(), nodes, "h2", now)
	want := appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 4, CurrentNumberScheduled: 3, NumberReady: 2,
		NumberAvailable: 2, UpdatedNumberScheduled: 2, NumberMisscheduled: 1, NumberUnavailable: 2}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("status\n got %+v\nwant %+v", st, want)
	}
}

func TestRevisionPatchReplacesTheTemplate(t *testing.T) {
	b, err := RevisionPatch(daemon())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"agent"}},"spec":{"containers":[{"image":"agent:v1","name":"a","resources":{}}]}}}}`
	if string(b) != want {
		t.Fatalf("patch\n got %s\nwant %s", b, want)
	}
}
