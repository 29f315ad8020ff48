package apiserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestNodeWatchSeesOnlyItsPods: a node agent's watch (fieldSelector spec.nodeName=<node>)
// on the shared stream gets ADDED when a pod is bound to it, MODIFIED for its updates,
// DELETED when it goes, and nothing of the other nodes' pods, in order.
func TestNodeWatchSeesOnlyItsPods(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client(0)
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	watchers := map[string]watch.Interface{}
	for _, n := range []string{"n1", "n2"} {
		w, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: "spec.nodeName=" + n})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watchers[n] = w
	}
	pods := cs.CoreV1().Pods("default")
	for i := range 4 {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		node := []string{"n1", "n2"}[i%2]
		if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name},
			Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cur, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Status.Phase = corev1.PodRunning
		if _, err := pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	zero := int64(0)
	if err := pods.Delete(ctx, "p0", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"n1": {"ADDED p0", "MODIFIED p0", "ADDED p2", "MODIFIED p2", "DELETED p0"},
		"n2": {"ADDED p1", "MODIFIED p1", "ADDED p3", "MODIFIED p3"},
	}
	for n, w := range watchers {
		var got []string
		timeout := time.After(10 * time.Second)
	collect:
		for len(got) < len(want[n]) {
			select {
			case ev := <-w.ResultChan():
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					t.Fatalf("%s: event %v", n, ev)
				}
				if p.Spec.NodeName != n {
					t.Fatalf("%s: got a pod of node %q", n, p.Spec.NodeName)
				}
				got = append(got, fmt.Sprintf("%s %s", ev.Type, p.Name))
			case <-timeout:
				break collect
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want[n]) {
			t.Errorf("%s saw %v, want %v", n, got, want[n])
		}
	}
}
