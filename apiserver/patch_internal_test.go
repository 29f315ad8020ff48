package apiserver

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestStrategicMergePatchMatchesJSONPath: a strategic merge patch applied through the
// unstructured map (as kube-apiserver's patcher does) gives the same object as through
// the object's JSON, whatever the patch touches (status, lists merged by key, directives,
// managedFields, metadata replaced), and leaves the current object as it was; a patch the
// map path cannot decide gets the JSON path's error.
func TestStrategicMergePatchMatchesJSONPath(t *testing.T) {
	c, err := newCodecs()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(c, builtinResources())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{codecs: c, reg: reg}
	q := &request{rs: reg.lookup("", "v1", "pods"), ri: &requestInfo{Name: "p", Namespace: "default", Subresource: "status"}, ns: "default"}
	now := metav1.NewTime(time.Unix(1700000000, 0))
	grace := int64(30)
	cur := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u-1", ResourceVersion: "7", CreationTimestamp: now,
			Labels: map[string]string{"app": "a", "tier": "t"}, Finalizers: []string{"f"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "bench", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now,
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}}`)}}}},
		Spec: corev1.PodSpec{NodeName: "n1", TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "c", Image: "pause:3.10", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBurstable,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now}}},
	}
	patches := map[string]string{
		"kubelet status": `{"metadata":{"uid":"u-1"},"status":{"$setElementOrder/conditions":[{"type":"PodReadyToStartContainers"},{"type":"Initialized"},{"type":"Ready"},{"type":"ContainersReady"},{"type":"PodScheduled"}],` +
			`"conditions":[{"lastProbeTime":null,"lastTransitionTime":"2026-11-24T01:00:00Z","status":"True","type":"PodReadyToStartContainers"},{"lastProbeTime":null,"lastTransitionTime":"2026-11-24T01:00:00Z","status":"True","type":"Initialized"},` +
			`{"lastProbeTime":null,"lastTransitionTime":"2026-11-24T01:00:00Z","status":"True","type":"Ready"},{"lastProbeTime":null,"lastTransitionTime":"2026-11-24T01:00:00Z","status":"True","type":"ContainersReady"}],` +
			`"containerStatuses":[{"containerID":"hollow://1","image":"pause:3.10","imageID":"sha256:1","lastState":{},"name":"c","ready":true,"restartCount":0,"started":true,"state":{"running":{"startedAt":"2026-11-24T01:00:00Z"}}}],` +
			`"hostIP":"10.0.0.1","hostIPs":[{"ip":"10.0.0.1"}],"phase":"Running","podIP":"10.244.1.7","podIPs":[{"ip":"10.244.1.7"}],"startTime":"2026-11-24T01:00:00Z"}}`,
		"labels":                `{"metadata":{"labels":{"tier":null,"new":"yes"}}}`,
		"containers by name":    `{"spec":{"containers":[{"name":"c","image":"pause:3.11"},{"name":"d","image":"x"}]}}`,
		"element order":         `{"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"name":"c","ports":[{"containerPort":80}]}]}}`,
		"delete a condition":    `{"status":{"conditions":[{"type":"PodScheduled","$patch":"delete"}]}}`,
		"replace metadata":      `{"metadata":{"$patch":"replace","name":"p","namespace":"default","uid":"u-1"}}`,
		"replace everything":    `{"$patch":"replace","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"c","image":"y"}]}}`,
		"managedFields":         `{"metadata":{"managedFields":[{"manager":"x","operation":"Update","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{}}}}]}}`,
		"drop managedFields":    `{"metadata":{"managedFields":null}}`,
		"integral float":        `{"spec":{"activeDeadlineSeconds":5.0,"terminationGracePeriodSeconds":10}}`,
		"kind in the patch":     `{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"k":"v"}}}`,
		"finalizers as a patch": `{"metadata":{"finalizers":["g"]}}`,
	}
	for name, patch := range patches {
		before := cur.DeepCopy()
		fast, ferr := s.applyPatch(nil, q, types.StrategicMergePatchType, []byte(patch), cur, writeOptions{})
		if !apiequality.Semantic.DeepEqual(cur, before) {
			t.Errorf("%s: the current object changed", name)
		}
		// fieldValidation=Strict takes the JSON path; none of these patches has an unknown field.
		slow, serr := s.applyPatch(nil, q, types.StrategicMergePatchType, []byte(patch), cur.DeepCopy(), writeOptions{fieldValidation: "Strict"})
		if ferr != nil || serr != nil {
			t.Errorf("%s: errors %v and %v", name, ferr, serr)
			continue
		}
		if !apiequality.Semantic.DeepEqual(fast, slow) {
			t.Errorf("%s: through the map\n%+v\nthrough JSON\n%+v", name, fast, slow)
		}
	}
	for name, patch := range map[string]string{
		"a string for a number": `{"spec":{"activeDeadlineSeconds":"x"}}`,
		"a fraction":            `{"spec":{"activeDeadlineSeconds":5.5}}`,
		"not an object":         `[1]`,
		"broken":                `{"spec":`,
	} {
		_, err := s.applyPatch(nil, q, types.StrategicMergePatchType, []byte(patch), cur.DeepCopy(), writeOptions{})
		if !apierrors.IsBadRequest(err) {
			t.Errorf("%s: got %v, want 400 as the JSON path gives", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "panic") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
