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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// TestStrategicMergePatchMatchesJSONPath: a strategic merge patch applied through the
// unstructured map (as kube-apiserver's patcher does) gives the same object as through
// the object's JSON, whatever the patch touches (status, lists merged by key, directives,
// managedFields, metadata replaced), and leaves the current object as it was; a patch the
// map path cannot decide gets the JSON path's error.
func TestStrategicMergePatchMatchesJSONPath(t *testing.T) {
	s, reg := codecServer(t)
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

// TestTrackingTypeConverterRecordsTheSameFields: manageFields, which leaves the live
// object's managedFields and the half of the object a write did not change out of the
// field manager's diff, records the same managedFields as the field manager given whole
// objects, and writes the object sent: for status and main-resource updates, a manager
// taking a field over, a field removed, an entry that names metadata.managedFields
// itself, and writes that change the other half.
func TestTrackingTypeConverterRecordsTheSameFields(t *testing.T) {
	s, reg := codecServer(t)
	rs := reg.lookup("", "v1", "pods")
	now := metav1.NewTime(time.Unix(1700000000, 0))
	entry := func(manager, sub, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now,
			Subresource: sub, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}
	creator := entry("bench", "", `{"f:metadata":{"f:labels":{".":{},"f:app":{},"f:tier":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}}`)
	kubelet := entry("kubelet", "status", `{"f:status":{"f:phase":{},"f:podIP":{}}}`)
	weird := entry("weird", "", `{"f:metadata":{"f:managedFields":{}},"f:spec":{"f:nodeName":{}}}`)
	pod := func(mf ...metav1.ManagedFieldsEntry) *corev1.Pod {
		return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u-1", CreationTimestamp: now,
				Labels: map[string]string{"app": "a", "tier": "t"}, ManagedFields: mf},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, PodIP: "10.0.0.1",
				Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now}}}}
	}
	type change struct {
		name, sub, manager string
		live               *corev1.Pod
		edit               func(p *corev1.Pod)
	}
	running := func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now})
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Image: "pause", Ready: true}}
	}
	for _, ch := range []change{
		{"first status write", "status", "kubelet", pod(creator), running},
		{"status write again", "status", "kubelet", pod(creator, kubelet), func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.2" }},
		{"another manager takes the phase", "status", "other", pod(creator, kubelet), running},
		{"labels", "", "kubectl", pod(creator, kubelet), func(p *corev1.Pod) { p.Labels["new"] = "x"; p.Labels["app"] = "b" }},
		{"a label removed", "", "kubectl", pod(creator, kubelet), func(p *corev1.Pod) { delete(p.Labels, "tier") }},
		{"an entry naming managedFields", "", "kubectl", pod(creator, weird), func(p *corev1.Pod) { p.Labels["new"] = "x" }},
		{"an entry naming managedFields, status", "status", "kubelet", pod(creator, weird), running},
		{"a status write that changes the spec", "status", "kubelet", pod(creator, kubelet), func(p *corev1.Pod) { running(p); p.Spec.Containers[0].Image = "x" }},
		{"a main write that changes the status", "", "kubectl", pod(creator, kubelet), func(p *corev1.Pod) { running(p); p.Labels["new"] = "x" }},
		{"a status write with an empty list for null", "status", "kubelet", pod(creator, kubelet), func(p *corev1.Pod) { running(p); p.Spec.Volumes = []corev1.Volume{} }},
	} {
		var got [2]*corev1.Pod
		for i, tracking := range []bool{false, true} {
			live := ch.live.DeepCopy()
			obj := live.DeepCopy()
			ch.edit(obj)
			want := obj.DeepCopy()
			var out runtime.Object
			if tracking {
				// skiff's path: the tracking converter, and the unchanged half left out.
				out = s.manageFields(&request{rs: rs, ri: &requestInfo{Subresource: ch.sub}}, live, obj, ch.manager)
			} else {
				fm, err := s.fieldManager(rs, ch.sub, false)
				if err != nil {
					t.Fatal(err)
				}
				if out, err = fm.Update(live, obj, ch.manager); err != nil {
					t.Fatalf("%s: %v", ch.name, err)
				}
			}
			if !apiequality.Semantic.DeepEqual(live, ch.live) {
				t.Errorf("%s: the live object changed", ch.name)
			}
			got[i] = out.(*corev1.Pod)
			for j := range got[i].ManagedFields {
				got[i].ManagedFields[j].Time = nil // the time of this write
			}
			want.ManagedFields = got[i].ManagedFields
			if !apiequality.Semantic.DeepEqual(got[i], want) {
				t.Errorf("%s: the written object differs from the one sent (but for managedFields)", ch.name)
			}
		}
		if !apiequality.Semantic.DeepEqual(got[0].ManagedFields, got[1].ManagedFields) {
			t.Errorf("%s: whole objects\n%s\nskiff's path\n%s", ch.name, fieldsOf(got[0].ManagedFields), fieldsOf(got[1].ManagedFields))
		}
	}
}

func fieldsOf(mf []metav1.ManagedFieldsEntry) string {
	var b strings.Builder
	for _, e := range mf {
		b.WriteString(e.Manager + " " + e.Subresource + " " + string(e.FieldsV1.Raw) + "\n")
	}
	return b.String()
}

// codecServer is a Server with only its codecs and the built-in resources' registry: enough
// for the patch and field-manager steps, which touch no store.
func codecServer(t *testing.T) (*Server, *registry) {
	t.Helper()
	c, err := newCodecs()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(c, builtinResources())
	if err != nil {
		t.Fatal(err)
	}
	return &Server{codecs: c, reg: reg}, reg
}
