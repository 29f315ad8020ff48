package endpoints

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func pod(name, ip string, ready bool, port int32) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "web"}},
		Spec:   corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
}

func service() *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}}}
}

func TestDesiredSlices(t *testing.T) {
	deleting := pod("d", "10.0.0.9", true, 8080)
	deleting.DeletionTimestamp = &metav1.Time{}
	finished := pod("f", "10.0.0.8", false, 8080)
	finished.Status.Phase = corev1.PodSucceeded
	pods := []*corev1.Pod{
		pod("b", "10.0.0.2", true, 8080), pod("a", "10.0.0.1", false, 8080), pod("c", "10.0.0.3", true, 9090),
		pod("noip", "", true, 8080), deleting, finished,
	}
	got := DesiredSlices(service(), pods, func(string) string { return "z1" })
	if len(got) != 2 {
		t.Fatalf("want one slice per resolved port set (8080, 9090), got %d", len(got))
	}
	s := got[0] // "web/TCP/8080" sorts first
	if *s.Ports[0].Port != 8080 || len(s.Endpoints) != 3 {
		t.Fatalf("slice 0: port %d, %d endpoints; want 8080 with a, b, d", *s.Ports[0].Port, len(s.Endpoints))
	}
	a, b, d := s.Endpoints[0], s.Endpoints[1], s.Endpoints[2]
	if *a.Conditions.Ready || !*b.Conditions.Ready || *b.Conditions.Terminating || *b.Zone != "z1" || *b.NodeName != "n1" {
		t.Fatalf("ready/zone/node wrong: a %+v b %+v", a.Conditions, b)
	}
	if *d.Conditions.Ready || !*d.Conditions.Serving || !*d.Conditions.Terminating {
		t.Fatalf("a terminating ready pod: want ready=false serving=true terminating=true, got %+v", d.Conditions)
	}
	if s.Labels[serviceNameKey] != "web" || s.OwnerReferences[0].Kind != "Service" {
		t.Fatalf("labels %v owners %v", s.Labels, s.OwnerReferences)
	}
	// Over 100 endpoints split.
	var many []*corev1.Pod
	for i := range 150 {
		many = append(many, pod(fmt.Sprintf("p%03d", i), fmt.Sprintf("10.1.%d.%d", i/200, i%200), true, 8080))
	}
	if got := DesiredSlices(service(), many, nil); len(got) != 2 || len(got[0].Endpoints) != 100 || len(got[1].Endpoints) != 50 {
		t.Fatalf("150 endpoints: want slices of 100 and 50, got %d", len(got))
	}
	// No pods: one empty slice.
	if got := DesiredSlices(service(), nil, nil); len(got) != 1 || len(got[0].Endpoints) != 0 {
		t.Fatalf("no pods: want one empty slice, got %v", got)
	}
}

func TestDesiredSubsets(t *testing.T) {
	deleting := pod("d", "10.0.0.9", true, 8080)
	deleting.DeletionTimestamp = &metav1.Time{}
	got := DesiredSubsets(service(), []*corev1.Pod{pod("b", "10.0.0.2", true, 8080), pod("a", "10.0.0.1", false, 8080), deleting})
	if len(got) != 1 {
		t.Fatalf("want 1 subset, got %d", len(got))
	}
	s := got[0]
	if len(s.Addresses) != 1 || s.Addresses[0].IP != "10.0.0.2" || len(s.NotReadyAddresses) != 1 || s.NotReadyAddresses[0].IP != "10.0.0.1" || s.Ports[0].Port != 8080 {
		t.Fatalf("subset %+v", s)
	}
}
