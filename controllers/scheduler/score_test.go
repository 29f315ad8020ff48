package scheduler

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestResourceScores(t *testing.T) {
	ni := NewNodeInfo(node("n", "4", "8Gi", 110), pod("q", "1", "2Gi"))
	p := pod("p", "1", "2Gi")
	// After placing p: 2 of 4 cpu, 4 of 8Gi memory used.
	if got := resourceScore(LeastAllocated, newPodInfo(p), ni); got != 50 {
		t.Errorf("least allocated = %d, want 50", got)
	}
	if got := resourceScore(MostAllocated, newPodInfo(p), ni); got != 50 {
		t.Errorf("most allocated = %d, want 50", got)
	}
	if got := balancedScore(newPodInfo(p), ni); got != 100 {
		t.Errorf("balanced = %d, want 100", got)
	}
	skewed := NewNodeInfo(node("n", "4", "8Gi", 110), pod("q", "3", "0"))
	if got := balancedScore(newPodInfo(pod("p", "1", "0")), skewed); got >= 100 {
		t.Errorf("balanced on a cpu-heavy node = %d, want < 100", got)
	}
	// A pod that requests nothing is scored with kube-scheduler's 100m / 200Mi defaults.
	if got := resourceScore(LeastAllocated, newPodInfo(pod("p", "", "")), NewNodeInfo(node("n", "1", "1Gi", 110))); got != (90+80)/2 {
		t.Errorf("defaults: least allocated = %d, want %d", got, (90+80)/2)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		raw     []int64
		reverse bool
		want    []int64
	}{
		{[]int64{0, 5, 10}, false, []int64{0, 50, 100}},
		{[]int64{0, 5, 10}, true, []int64{100, 50, 0}},
		{[]int64{0, 0}, true, []int64{100, 100}},
		{[]int64{0, 0}, false, []int64{0, 0}},
	}
	for _, tt := range tests {
		if got := normalize(tt.raw, tt.reverse); !slices.Equal(got, tt.want) {
			t.Errorf("normalize(%v, %v) = %v, want %v", tt.raw, tt.reverse, got, tt.want)
		}
	}
}

func TestScheduleChoices(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	preferSSD := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 10,
				Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}}}},
		}}
	}
	tests := []struct {
		name  string
		pod   *corev1.Pod
		nodes []*NodeInfo
		want  string
	}{
		{name: "least allocated", pod: pod("p", "1", "1Gi"), nodes: []*NodeInfo{
			NewNodeInfo(node("busy", "4", "8Gi", 110), pod("a", "3", "6Gi")),
			NewNodeInfo(node("idle", "4", "8Gi", 110)),
		}, want: "idle"},
		{name: "preferred affinity", pod: pod("p", "", "", preferSSD), nodes: []*NodeInfo{
			NewNodeInfo(node("hdd", "4", "8Gi", 110)),
			NewNodeInfo(node("ssd", "4", "8Gi", 110, withLabel("disk", "ssd"))),
		}, want: "ssd"},
		{name: "spread of a controller's pods", pod: pod("p", "", "", withOwner("rs1")), nodes: []*NodeInfo{
			NewNodeInfo(node("a", "4", "8Gi", 110), pod("x1", "", "", withOwner("rs1")), pod("x2", "", "", withOwner("rs1"))),
			NewNodeInfo(node("b", "4", "8Gi", 110), pod("y1", "", "", withOwner("other")), pod("y2", "", "", withOwner("other"))),
		}, want: "b"},
		{name: "prefer-no-schedule avoided", pod: pod("p", "", ""), nodes: []*NodeInfo{
			NewNodeInfo(node("tainted", "4", "8Gi", 110, withTaint("k", "v", corev1.TaintEffectPreferNoSchedule))),
			NewNodeInfo(node("clean", "4", "8Gi", 110)),
		}, want: "clean"},
		{name: "only feasible node", pod: pod("p", "2", ""), nodes: []*NodeInfo{
			NewNodeInfo(node("small", "1", "8Gi", 110)),
			NewNodeInfo(node("big", "4", "8Gi", 110), pod("a", "1", "")),
		}, want: "big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Schedule(LeastAllocated, tt.pod, tt.nodes, 0, rng)
			if err != nil || d.Node != tt.want {
				t.Fatalf("Schedule = %q, %v; want %q", d.Node, err, tt.want)
			}
		})
	}
}

func TestFitErrorMessage(t *testing.T) {
	nodes := []*NodeInfo{
		NewNodeInfo(node("a", "1", "1Gi", 110)),
		NewNodeInfo(node("b", "4", "8Gi", 110, withTaint("dedicated", "x", corev1.TaintEffectNoSchedule))),
		NewNodeInfo(node("c", "4", "8Gi", 110, func(n *corev1.Node) { n.Spec.Unschedulable = true })),
	}
	_, err := Schedule(LeastAllocated, pod("p", "2", ""), nodes, 0, nil)
	want := "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint(s), 1 node(s) were unschedulable."
	var fe *FitError
	if !errors.As(err, &fe) || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if _, err := Schedule(LeastAllocated, pod("p", "", ""), nil, 0, nil); !errors.Is(err, ErrNoNodesAvailable) {
		t.Fatalf("no nodes: err = %v", err)
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	for _, tt := range []struct{ all, want int }{{5, 5}, {100, 100}, {1000, 420}, {5000, 500}, {200, 98 + 2}} {
		if got := numFeasibleNodesToFind(tt.all); got != tt.want {
			t.Errorf("numFeasibleNodesToFind(%d) = %d, want %d", tt.all, got, tt.want)
		}
	}
}
