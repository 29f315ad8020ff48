package apiserver_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestUpdateRightAfterAWriteThroughAnotherServer: an update starts from the server's own
// replica, which may not have the write a client just made through another server yet. The
// client must never see that lag: an update carrying the new resourceVersion, a patch, and a
// status update each succeed at once and build on the latest object.
func TestUpdateRightAfterAWriteThroughAnotherServer(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx := context.Background()
	a, b, d := c.Client(0).CoreV1(), c.Client(1).CoreV1(), c.Client(2).CoreV1()
	for i := range 60 {
		name := fmt.Sprintf("lag-%d", i)
		cm, err := a.ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"n": "0"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["n"] = "1"
		cm, err = b.ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("%s: update through another server right after the create: %v", name, err)
		}
		if _, err := d.ConfigMaps("default").Patch(ctx, name, types.MergePatchType, []byte(`{"data":{"m":"2"}}`), metav1.PatchOptions{}); err != nil {
			t.Fatalf("%s: patch through a third server: %v", name, err)
		}
		// An unconditional update back to a value an older revision had is not a no-op.
		cm.ResourceVersion = ""
		cm.Data = map[string]string{"n": "0"}
		if _, err := a.ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("%s: unconditional update: %v", name, err)
		}
		got, err := b.ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Data) != 1 || got.Data["n"] != "0" {
			t.Fatalf("%s: data %v, want only n=0", name, got.Data)
		}
		// A namespace created through one server takes content through another at once,
		// and that content is deleted (UID precondition) through a third.
		ns := fmt.Sprintf("lag-ns-%d", i)
		if _, err := a.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		in, err := b.ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: create in a namespace just created through another server: %v", ns, err)
		}
		if err := d.ConfigMaps(ns).Delete(ctx, "x", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &in.UID}}); err != nil {
			t.Fatalf("%s: delete through a third server right after the create: %v", ns, err)
		}
	}
}
