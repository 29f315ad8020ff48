package trim

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestManagedFields(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}}}
	out, err := ManagedFields(pod)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Pod)
	if got.ManagedFields != nil || got.Name != "p" || got.Labels["a"] != "b" {
		t.Fatalf("got %+v, want the pod without managedFields and nothing else changed", got.ObjectMeta)
	}
	// A tombstone (what an informer hands on for a missed delete) has no metadata: unchanged.
	ts := cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: pod}
	if out, err := ManagedFields(ts); err != nil || out != any(ts) {
		t.Fatalf("tombstone: %v, %v", out, err)
	}
}
