package scheduler

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestFilter(t *testing.T) {
	requireZone := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}}},
			}}},
		}}
	}
	tests := []struct {
		name    string
		pod     *corev1.Pod
		node    *corev1.Node
		onNode  []*corev1.Pod
		reasons []string
	}{
		{name: "fits", pod: pod("p", "500m", "1Gi"), node: node("n", "1", "2Gi", 10)},
		{name: "unschedulable node", pod: pod("p", "", ""), node: node("n", "1", "1Gi", 10, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
			reasons: []string{ReasonUnschedulable}},
		{name: "unschedulable tolerated", pod: pod("p", "", "", withToleration(corev1.TaintNodeUnschedulable, corev1.TolerationOpExists, corev1.TaintEffectNoSchedule)),
			node: node("n", "1", "1Gi", 10, func(n *corev1.Node) { n.Spec.Unschedulable = true })},
		{name: "NoSchedule taint", pod: pod("p", "", ""), node: node("n", "1", "1Gi", 10, withTaint("dedicated", "gpu", corev1.TaintEffectNoSchedule)),
			reasons: []string{ReasonUntoleratedTain}},
		{name: "PreferNoSchedule taint does not filter", pod: pod("p", "", ""), node: node("n", "1", "1Gi", 10, withTaint("k", "v", corev1.TaintEffectPreferNoSchedule))},
		{name: "taint tolerated", pod: pod("p", "", "", withToleration("dedicated", corev1.TolerationOpExists, "")),
			node: node("n", "1", "1Gi", 10, withTaint("dedicated", "gpu", corev1.TaintEffectNoExecute))},
		{name: "not-ready taint", pod: pod("p", "", ""), node: node("n", "1", "1Gi", 10, withTaint(corev1.TaintNodeNotReady, "", corev1.TaintEffectNoSchedule)),
			reasons: []string{ReasonUntoleratedTain}},
		{name: "unreachable taint", pod: pod("p", "", ""), node: node("n", "1", "1Gi", 10, withTaint(corev1.TaintNodeUnreachable, "", corev1.TaintEffectNoExecute)),
			reasons: []string{ReasonUntoleratedTain}},
		{name: "NotReady without taint yet", pod: pod("p", "", ""), node: node("n", "1", "1Gi", 10, withReady(corev1.ConditionFalse)),
			reasons: []string{ReasonUntoleratedTain}},
		{name: "Unknown ready tolerated by daemon pod", pod: pod("p", "", "", withToleration(corev1.TaintNodeUnreachable, corev1.TolerationOpExists, corev1.TaintEffectNoSchedule)),
			node: node("n", "1", "1Gi", 10, withReady(corev1.ConditionUnknown))},
		{name: "nodeSelector mismatch", pod: pod("p", "", "", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
			node: node("n", "1", "1Gi", 10), reasons: []string{ReasonNodeAffinity}},
		{name: "nodeSelector match", pod: pod("p", "", "", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
			node: node("n", "1", "1Gi", 10, withLabel("disk", "ssd"))},
		{name: "required affinity mismatch", pod: pod("p", "", "", requireZone), node: node("n", "1", "1Gi", 10, withLabel("zone", "c")),
			reasons: []string{ReasonNodeAffinity}},
		{name: "required affinity match", pod: pod("p", "", "", requireZone), node: node("n", "1", "1Gi", 10, withLabel("zone", "b"))},
		{name: "host port conflict", pod: pod("p", "", "", withHostPort(8080)), node: node("n", "1", "1Gi", 10),
			onNode: []*corev1.Pod{pod("q", "", "", withHostPort(8080))}, reasons: []string{ReasonNodePorts}},
		{name: "different host port", pod: pod("p", "", "", withHostPort(8080)), node: node("n", "1", "1Gi", 10),
			onNode: []*corev1.Pod{pod("q", "", "", withHostPort(8081))}},
		{name: "insufficient cpu and memory", pod: pod("p", "600m", "600Mi"), node: node("n", "1", "1Gi", 10),
			onNode: []*corev1.Pod{pod("q", "500m", "500Mi")}, reasons: []string{"Insufficient cpu", "Insufficient memory"}},
		{name: "exactly full", pod: pod("p", "500m", "512Mi"), node: node("n", "1", "1Gi", 10),
			onNode: []*corev1.Pod{pod("q", "500m", "512Mi")}},
		{name: "too many pods", pod: pod("p", "", ""), node: node("n", "1", "1Gi", 1),
			onNode: []*corev1.Pod{pod("q", "", "")}, reasons: []string{ReasonTooManyPods}},
		{name: "first failing filter wins", pod: pod("p", "2", ""), node: node("n", "1", "1Gi", 10, withTaint("a", "", corev1.TaintEffectNoSchedule)),
			reasons: []string{ReasonUntoleratedTain}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Filter(tt.pod, NewNodeInfo(tt.node, tt.onNode...))
			if !slices.Equal(got, tt.reasons) {
				t.Fatalf("Filter = %q, want %q", got, tt.reasons)
			}
		})
	}
}

func TestNodeInfoRemovePodRestoresSums(t *testing.T) {
	ni := NewNodeInfo(node("n", "1", "1Gi", 10))
	p := pod("p", "300m", "100Mi", withHostPort(80))
	ni.AddPod(p)
	ni.AddPod(p) // an update of the same pod is not counted twice
	if ni.Requested.MilliCPU != 300 || ni.Requested.Pods != 1 || len(ni.UsedPorts) != 1 {
		t.Fatalf("after add: %+v ports %v", ni.Requested, ni.UsedPorts)
	}
	ni.RemovePod(p.UID)
	if ni.Requested.MilliCPU != 0 || ni.Requested.Memory != 0 || ni.Requested.Pods != 0 || len(ni.UsedPorts) != 0 {
		t.Fatalf("after remove: %+v ports %v", ni.Requested, ni.UsedPorts)
	}
}

// The filters read what SetNode computed from the node: an update that makes the node
// NotReady, or taints it, must change the verdict, and one that heals it must change it back.
func TestFilterFollowsNodeUpdates(t *testing.T) {
	p := pod("p", "", "")
	ni := NewNodeInfo(node("n", "1", "1Gi", 10))
	if got := Filter(p, ni); got != nil {
		t.Fatalf("Ready node: Filter = %q, want it to fit", got)
	}
	ni.SetNode(node("n", "1", "1Gi", 10, withReady(corev1.ConditionFalse)))
	if got := Filter(p, ni); !slices.Equal(got, []string{ReasonUntoleratedTain}) {
		t.Fatalf("NotReady node: Filter = %q, want %q", got, ReasonUntoleratedTain)
	}
	ni.SetNode(node("n", "1", "1Gi", 10, withTaint("dedicated", "gpu", corev1.TaintEffectNoExecute)))
	if got := Filter(p, ni); !slices.Equal(got, []string{ReasonUntoleratedTain}) {
		t.Fatalf("tainted node: Filter = %q, want %q", got, ReasonUntoleratedTain)
	}
	ni.SetNode(node("n", "1", "1Gi", 10))
	if got := Filter(p, ni); got != nil {
		t.Fatalf("healed node: Filter = %q, want it to fit", got)
	}
}
