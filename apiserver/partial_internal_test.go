package apiserver

import (
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/raftstore"
)

// TestEveryKindKeepsObjectMetaInFieldOne: metadata-only lists read field 1 of the stored
// protobuf message as ObjectMeta; that holds for every kind skiff serves.
func TestEveryKindKeepsObjectMetaInFieldOne(t *testing.T) {
	c, err := newCodecs()
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Unix(1700000000, 0))
	want := metav1.ObjectMeta{Name: "n", Namespace: "ns", UID: "u-1", Generation: 3, CreationTimestamp: now,
		Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"c": "d"}, Finalizers: []string{"f"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "o", UID: "u-0"}},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "m", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:x":{}}`)}}}}
	for _, rs := range builtinResources() {
		obj := rs.newObject(c)
		m, err := meta.Accessor(obj)
		if err != nil {
			t.Fatalf("%s: %v", rs.GVR, err)
		}
		m.SetName(want.Name)
		m.SetNamespace(want.Namespace)
		m.SetUID(want.UID)
		m.SetGeneration(want.Generation)
		m.SetCreationTimestamp(want.CreationTimestamp)
		m.SetLabels(want.Labels)
		m.SetAnnotations(want.Annotations)
		m.SetFinalizers(want.Finalizers)
		m.SetOwnerReferences(want.OwnerReferences)
		m.SetManagedFields(want.ManagedFields)
		data, err := c.encodeStorage(obj)
		if err != nil {
			t.Fatalf("%s: %v", rs.GVR, err)
		}
		p, err := decodePartial(raftstore.KV{Value: data, ModRevision: 42})
		if err != nil {
			t.Fatalf("%s: %v", rs.GVR, err)
		}
		exp := *want.DeepCopy()
		exp.ResourceVersion = "42"
		if !apiequality.Semantic.DeepEqual(p.ObjectMeta, exp) {
			t.Errorf("%s: metadata read from field 1:\n%+v\nwant\n%+v", rs.GVR, p.ObjectMeta, exp)
		}
	}
}
