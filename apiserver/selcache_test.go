package apiserver_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestFilteredListsFollowChanges: lists and watch-lists filtered by labels and fields (as
// node agents list their pods) answer from what selectors see of each object at its
// current revision: after a label change, a binding and a status change, the same
// selectors asked again pick exactly the objects that match now.
func TestFilteredListsFollowChanges(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client(0)
	pods := cs.CoreV1().Pods("default")
	for i := range 6 {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Labels: map[string]string{"tier": "a"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(step string, opts metav1.ListOptions, want ...string) {
		t.Helper()
		list, err := pods.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range list.Items {
			got = append(got, p.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: list %q/%q = %v, want %v", step, opts.LabelSelector, opts.FieldSelector, got, want)
		}
		if w := watchListNames(ctx, t, cs, opts); !slices.Equal(w, want) {
			t.Errorf("%s: watch-list %q/%q = %v, want %v", step, opts.LabelSelector, opts.FieldSelector, w, want)
		}
	}
	onNode := metav1.ListOptions{FieldSelector: "spec.nodeName=n1"}
	running := metav1.ListOptions{FieldSelector: "status.phase=Running"}
	tierB := metav1.ListOptions{LabelSelector: "tier=b"}
	expect("before", onNode)
	expect("before", running)
	expect("before", tierB)

	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p2, err := pods.Get(ctx, "p2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2.Status.Phase = corev1.PodRunning
	if _, err := pods.UpdateStatus(ctx, p2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p3, err := pods.Get(ctx, "p3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p3.Labels["tier"] = "b"
	if _, err := pods.Update(ctx, p3, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("after", onNode, "p1")
	expect("after", running, "p2")
	expect("after", tierB, "p3")
	expect("after", metav1.ListOptions{LabelSelector: "tier=a", FieldSelector: "spec.nodeName="}, "p0", "p2", "p4", "p5")

	if err := pods.Delete(ctx, "p1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	expect("after delete", onNode)
}

// watchListNames is the names a watch with sendInitialEvents sends before its bookmark.
func watchListNames(ctx context.Context, t *testing.T, cs kubernetes.Interface, opts metav1.ListOptions) []string {
	t.Helper()
	yes := true
	opts.SendInitialEvents, opts.AllowWatchBookmarks = &yes, true
	opts.ResourceVersionMatch = metav1.ResourceVersionMatchNotOlderThan
	w, err := cs.CoreV1().Pods("default").Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var names []string
	for ev := range w.ResultChan() {
		if ev.Type == watch.Bookmark {
			break
		}
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
			names = append(names, p.Name)
		} else {
			t.Fatalf("initial event %s %T", ev.Type, ev.Object)
		}
	}
	slices.Sort(names)
	return names
}

// BenchmarkNodeAgentPodList is a node agent's list of its pods (fieldSelector
// spec.nodeName) among 5,000 pods of other nodes.
func BenchmarkNodeAgentPodList(b *testing.B) {
	c := apitest.Start(b, 1, apitest.Options{})
	ctx := context.Background()
	pods := c.Client(0).CoreV1().Pods("default")
	for i := range 5000 {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Labels: map[string]string{"app": "x"}},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("n%d", i%100), Containers: []corev1.Container{{Name: "c", Image: "img"}}}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n7", ResourceVersion: "0"})
		if err != nil || len(list.Items) != 50 {
			b.Fatalf("%d pods, %v", len(list.Items), err)
		}
	}
}
