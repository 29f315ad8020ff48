package replicaset

import (
	"errors"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReplicaDiff(t *testing.T) {
	tests := []struct {
		active  int
		desired int32
		want    int
	}{
		{0, 3, 3}, {3, 3, 0}, {5, 3, -2}, {0, 1000, 500}, {1000, 0, -500},
	}
	for _, tt := range tests {
		if got := ReplicaDiff(tt.active, tt.desired, BurstReplicas); got != tt.want {
			t.Errorf("ReplicaDiff(%d, %d) = %d, want %d", tt.active, tt.desired, got, tt.want)
		}
	}
}

func TestSlowStartBatches(t *testing.T) {
	for n, want := range map[int][]int{0: nil, 1: {1}, 3: {1, 2}, 10: {1, 2, 4, 3}} {
		if got := SlowStartBatches(n); !slices.Equal(got, want) {
			t.Errorf("SlowStartBatches(%d) = %v, want %v", n, got, want)
		}
	}
}

type podOpt func(*corev1.Pod)

func mkPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(time.Unix(1000, 0))},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func on(node string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = node } }
func phase(ph corev1.PodPhase) podOpt {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}
func ready(since int64) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(time.Unix(since, 0))})
	}
}
func created(at int64) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(time.Unix(at, 0)) }
}

func TestPodsToDeleteOrder(t *testing.T) {
	now := time.Unix(10000, 0)
	tests := []struct {
		name string
		pods []*corev1.Pod
		want string
	}{
		{"unassigned first", []*corev1.Pod{mkPod("a", on("n1"), ready(1)), mkPod("b", phase(corev1.PodPending))}, "b"},
		{"pending before running", []*corev1.Pod{mkPod("a", on("n1")), mkPod("b", on("n2"), phase(corev1.PodPending))}, "b"},
		{"not ready before ready", []*corev1.Pod{mkPod("a", on("n1"), ready(1)), mkPod("b", on("n2"))}, "b"},
		{"doubled up first", []*corev1.Pod{mkPod("a", on("n1"), ready(1)), mkPod("b", on("n2"), ready(1)), mkPod("c", on("n2"), ready(1))}, "c"},
		{"ready for less time first", []*corev1.Pod{mkPod("a", on("n1"), ready(100)), mkPod("b", on("n2"), ready(200))}, "b"},
		{"newer first", []*corev1.Pod{mkPod("a", on("n1"), created(5)), mkPod("b", on("n2"), created(9))}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PodsToDelete(tt.pods, tt.pods, 1, now)
			if len(got) != 1 || got[0].Name != tt.want {
				t.Fatalf("deleted %v, want %s", got, tt.want)
			}
		})
	}
	if got := PodsToDelete([]*corev1.Pod{mkPod("a")}, nil, 5, now); len(got) != 1 {
		t.Fatalf("asked for more than there are: %d", len(got))
	}
}

func TestCalculateStatus(t *testing.T) {
	now := time.Unix(10000, 0)
	three := int32(3)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Generation: 7},
		Spec: appsv1.ReplicaSetSpec{Replicas: &three, MinReadySeconds: 10,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x", "tier": "web"}}}}}
	label := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "x", "tier": "web"} }
	pods := []*corev1.Pod{
		mkPod("a", label, ready(100)),  // available
		mkPod("b", label, ready(9995)), // ready, not yet available
		mkPod("c"),                     // not fully labeled, not ready
	}
	st := CalculateStatus(rs, pods, 2, nil, "", now)
	if st.Replicas != 3 || st.FullyLabeledReplicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 ||
		st.ObservedGeneration != 7 || *st.TerminatingReplicas != 2 || len(st.Conditions) != 0 {
		t.Fatalf("status = %+v", st)
	}
	st = CalculateStatus(rs, nil, 0, errors.New("quota"), "FailedCreate", now)
	if len(st.Conditions) != 1 || st.Conditions[0].Reason != "FailedCreate" || st.Conditions[0].Message != "quota" {
		t.Fatalf("conditions = %+v", st.Conditions)
	}
}
