package trim

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// decoded is pod as an informer gets it: its own copy, decoded from the wire.
func decoded(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	b, err := pod.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := &corev1.Pod{}
	if err := out.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return out
}

func deploymentPod(name, node, cpu string) *corev1.Pod {
	yes := true
	expire := int64(3607)
	started := metav1.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC)
	if cpu != "10m" {
		started = metav1.Date(2026, 11, 24, 11, 0, 1, 0, time.UTC)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
			Labels:          map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7c9b6", UID: "u1", Controller: &yes}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{Name: "c", Image: "pause",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("16Mi")}}}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
			Volumes: []corev1.Volume{{Name: "kube-api-access-" + name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &expire}}}}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0." + name, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
		}},
	}
}

func samePointer(a, b any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Two pods of one template end up holding one copy of their common parts, each pod reads
// exactly as before, and a part that differs stays the pod's own.
func TestPodsShareTheirEqualParts(t *testing.T) {
	a, b := decoded(t, deploymentPod("a", "n1", "10m")), decoded(t, deploymentPod("b", "n2", "10m"))
	other := decoded(t, deploymentPod("c", "n1", "20m"))
	want := map[*corev1.Pod]*corev1.Pod{a: a.DeepCopy(), b: b.DeepCopy(), other: other.DeepCopy()}
	for _, p := range []*corev1.Pod{a, b, other} {
		if _, err := Object(p); err != nil {
			t.Fatal(err)
		}
		want[p].ManagedFields = nil
		if !equality.Semantic.DeepEqual(p, want[p]) {
			t.Fatalf("pod %s changed: %+v", p.Name, p)
		}
	}
	for what, pair := range map[string][2]any{
		"labels":      {a.Labels, b.Labels},
		"owners":      {a.OwnerReferences, b.OwnerReferences},
		"requests":    {a.Spec.Containers[0].Resources.Requests, b.Spec.Containers[0].Resources.Requests},
		"tolerations": {a.Spec.Tolerations, b.Spec.Tolerations},
		"projected":   {a.Spec.Volumes[0].Projected, b.Spec.Volumes[0].Projected},
		"conditions":  {a.Status.Conditions, b.Status.Conditions},
	} {
		if !samePointer(pair[0], pair[1]) {
			t.Errorf("%s: equal but not shared", what)
		}
	}
	if samePointer(a.Spec.Containers[0].Resources.Requests, other.Spec.Containers[0].Resources.Requests) {
		t.Error("different requests shared")
	}
	if samePointer(a.Status.Conditions, other.Status.Conditions) {
		t.Error("conditions of another second shared")
	}
	if !samePointer(a.Labels, other.Labels) {
		t.Error("labels of a third pod not shared")
	}
	// A controller's DeepCopy is its own: changing it leaves the cached pods alone.
	c := a.DeepCopy()
	c.Labels["app"] = "changed"
	if b.Labels["app"] != "web" {
		t.Error("a DeepCopy's change reached another pod")
	}
}
