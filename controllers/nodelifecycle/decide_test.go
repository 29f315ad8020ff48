package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMarkUnknown(t *testing.T) {
	now := time.Unix(1000, 0)
	conds := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	out, changed := MarkUnknown(conds, now)
	if !changed || len(out) != 4 || out[0].Status != corev1.ConditionUnknown || out[0].Reason != "NodeStatusUnknown" ||
		out[0].Message != "Kubelet stopped posting node status." {
		t.Fatalf("MarkUnknown = %+v", out)
	}
	if _, changed := MarkUnknown(out, now); changed {
		t.Fatal("second MarkUnknown changed something")
	}
	if conds[0].Status != corev1.ConditionTrue {
		t.Fatal("input modified")
	}
}

func TestTaints(t *testing.T) {
	now := time.Unix(1000, 0)
	node := func(ready corev1.ConditionStatus, cordoned bool, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{Spec: corev1.NodeSpec{Unschedulable: cordoned, Taints: taints},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
	}
	user := corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name    string
		node    *corev1.Node
		want    []string
		changed bool
	}{
		{"ready, untainted", node(corev1.ConditionTrue, false, user), []string{"dedicated:NoSchedule"}, false},
		{"unknown", node(corev1.ConditionUnknown, false, user), []string{"dedicated:NoSchedule", "node.kubernetes.io/unreachable:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"}, true},
		{"not ready", node(corev1.ConditionFalse, false), []string{"node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/not-ready:NoExecute"}, true},
		{"recovered", node(corev1.ConditionTrue, false, TaintUnreachableNoExecute, user), []string{"dedicated:NoSchedule"}, true},
		{"cordoned", node(corev1.ConditionTrue, true), []string{"node.kubernetes.io/unschedulable:NoSchedule"}, true},
	}
	for _, tt := range tests {
		got, changed := ReconcileTaints(tt.node.Spec.Taints, WantedTaints(tt.node), now)
		var keys []string
		for _, t := range got {
			keys = append(keys, t.Key+":"+string(t.Effect))
			if t.Effect == corev1.TaintEffectNoExecute && t.TimeAdded == nil {
				t.TimeAdded = nil // a NoExecute taint must say when it was added
				keys = append(keys, "missing timeAdded")
			}
		}
		if changed != tt.changed || len(keys) != len(tt.want) {
			t.Errorf("%s: taints %v changed %v, want %v %v", tt.name, keys, changed, tt.want, tt.changed)
			continue
		}
		for i := range keys {
			if keys[i] != tt.want[i] {
				t.Errorf("%s: taints %v, want %v", tt.name, keys, tt.want)
			}
		}
	}
}

func TestEvictAt(t *testing.T) {
	now := time.Unix(10000, 0)
	added := metav1.NewTime(now.Add(-100 * time.Second))
	unreachable := []corev1.Taint{{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added}}
	secs := func(s int64) *int64 { return &s }
	tol := func(seconds *int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
	}
	tests := []struct {
		name   string
		tols   []corev1.Toleration
		taints []corev1.Taint
		at     time.Time
		evict  bool
	}{
		{"default 300s toleration", nil, unreachable, added.Add(300 * time.Second), true},
		{"own 30s toleration", []corev1.Toleration{tol(secs(30))}, unreachable, added.Add(30 * time.Second), true},
		{"tolerates forever", []corev1.Toleration{tol(nil)}, unreachable, time.Time{}, false},
		{"untolerated custom NoExecute", nil, []corev1.Taint{{Key: "evict-me", Effect: corev1.TaintEffectNoExecute}}, now, true},
		{"NoSchedule only", nil, []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectNoSchedule}}, time.Time{}, false},
	}
	for _, tt := range tests {
		p := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tt.tols}}
		at, evict := EvictAt(p, tt.taints, 300*time.Second, now)
		if evict != tt.evict || !at.Equal(tt.at) {
			t.Errorf("%s: EvictAt = %v %v, want %v %v", tt.name, at, evict, tt.at, tt.evict)
		}
	}
}
