package apiserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestNodeStatusPatch: a node's kubelet-style status patch (a strategic merge patch of
// pods/status with the pod's uid, protobuf answers) merges into the pod's status, leaves
// its spec and its creator's managedFields alone, records the node's fields as an Update
// of the status subresource, and, sent again, changes nothing.
func TestNodeStatusPatch(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := c.Client(0)
	rc := c.RESTConfigFor(0, c.PKI.ClientCert(t, "system:node:n1", "system:nodes"))
	rc.ContentType, rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf", "application/vnd.kubernetes.protobuf,application/json"
	rc.UserAgent = "kubelet/v1.32.0"
	node := kubernetes.NewForConfigOrDie(rc)

	created, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "a"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound, err := admin.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	st := *bound.Status.DeepCopy()
	st.Phase, st.PodIP, st.PodIPs = corev1.PodRunning, "10.244.1.7", []corev1.PodIP{{IP: "10.244.1.7"}}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now})
	st.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Image: "busybox", Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
	oldData, _ := json.Marshal(corev1.Pod{Status: bound.Status})
	newData, _ := json.Marshal(corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: bound.UID}, Status: st})
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, corev1.Pod{})
	if err != nil {
		t.Fatal(err)
	}

	got, err := node.CoreV1().Pods("default").Patch(ctx, "p", types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodRunning || got.Status.PodIP != "10.244.1.7" || len(got.Status.ContainerStatuses) != 1 {
		t.Errorf("status after the patch: %+v", got.Status)
	}
	conds := map[corev1.PodConditionType]bool{}
	for _, cond := range got.Status.Conditions {
		conds[cond.Type] = true
	}
	if !conds[corev1.PodScheduled] || !conds[corev1.PodReady] {
		t.Errorf("conditions %+v: want the binding's PodScheduled kept and Ready added", got.Status.Conditions)
	}
	if got.Spec.NodeName != "n1" || got.Labels["app"] != "a" {
		t.Errorf("spec or labels changed: node %q, labels %v", got.Spec.NodeName, got.Labels)
	}
	var creator, kubelet *metav1.ManagedFieldsEntry
	for i, e := range got.ManagedFields {
		switch e.Manager {
		case created.ManagedFields[0].Manager:
			creator = &got.ManagedFields[i]
		case "kubelet":
			kubelet = &got.ManagedFields[i]
		}
	}
	if creator == nil || string(creator.FieldsV1.Raw) != string(created.ManagedFields[0].FieldsV1.Raw) {
		t.Errorf("the creator's managedFields entry changed: %+v, was %+v", creator, created.ManagedFields[0])
	}
	if kubelet == nil {
		t.Fatalf("no managedFields entry for the kubelet: %+v", got.ManagedFields)
	}
	fields := string(kubelet.FieldsV1.Raw)
	if kubelet.Operation != metav1.ManagedFieldsOperationUpdate || kubelet.Subresource != "status" || kubelet.APIVersion != "v1" ||
		!strings.Contains(fields, `"f:phase"`) || !strings.Contains(fields, `"k:{\"type\":\"Ready\"}"`) ||
		!strings.Contains(fields, `"f:podIP"`) || strings.Contains(fields, `"f:spec"`) || strings.Contains(fields, `"f:metadata"`) {
		t.Errorf("the kubelet's entry: %+v %s", kubelet, fields)
	}

	again, err := node.CoreV1().Pods("default").Patch(ctx, "p", types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != got.ResourceVersion {
		t.Errorf("the same patch again wrote the pod: resourceVersion %s -> %s", got.ResourceVersion, again.ResourceVersion)
	}
}

// TestPodSpecIsImmutable: a pod's spec takes a new image, but any other change is refused
// (422), as kube-apiserver refuses it; a status write with the spec as stored passes.
func TestPodSpecIsImmutable(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods := c.Client(0).CoreV1().Pods("default")
	p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{NodeSelector: map[string]string{"a": "1", "b": "2"}, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Containers[0].Image = "busybox:1.37"
	if p, err = pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("new image: %v", err)
	}
	p.Status.Phase = corev1.PodRunning
	if p, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status: %v", err)
	}
	changed := p.DeepCopy()
	changed.Spec.NodeSelector["b"] = "3"
	if _, err := pods.Update(ctx, changed, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("changed nodeSelector: %v, want 422", err)
	}
	changed = p.DeepCopy()
	changed.Spec.Containers[0].Args = []string{"x"}
	if _, err := pods.Update(ctx, changed, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("changed args: %v, want 422", err)
	}
}
