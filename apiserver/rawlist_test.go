package apiserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestProtobufListsEqualJSONLists: protobuf lists, assembled from the stored bytes without
// decoding, read back exactly as the decoded JSON lists do (items, resourceVersions, list
// metadata, pages), through another node.
func TestProtobufListsEqualJSONLists(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jsonClient := c.Client(1)
	cfg := c.RESTConfig(1)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
	pb, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Labels: map[string]string{"i": fmt.Sprint(i)}, Annotations: map[string]string{"a": "b"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x", Args: []string{"a", "b"}}}}}
		if _, err := c.Client(0).CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Client(0).CoreV1().Pods("default").Patch(ctx, "p3", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []metav1.ListOptions{{}, {ResourceVersion: "0"}, {Limit: 3}} {
		want, err := jsonClient.CoreV1().Pods("default").List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pb.CoreV1().Pods("default").List(ctx, metav1.ListOptions{ResourceVersion: opts.ResourceVersion, Limit: opts.Limit})
		if err != nil {
			t.Fatalf("protobuf list %+v: %v", opts, err)
		}
		if len(got.Items) != len(want.Items) || got.Continue != want.Continue || deref(got.RemainingItemCount) != deref(want.RemainingItemCount) {
			t.Fatalf("list %+v: protobuf %d items cont %q rem %v; json %d items cont %q rem %v", opts,
				len(got.Items), got.Continue, got.RemainingItemCount, len(want.Items), want.Continue, want.RemainingItemCount)
		}
		for i := range want.Items {
			if got.Items[i].ResourceVersion == "" || !apiequality.Semantic.DeepEqual(got.Items[i], want.Items[i]) {
				t.Fatalf("item %d differs:\nprotobuf %+v\njson     %+v", i, got.Items[i].ObjectMeta, want.Items[i].ObjectMeta)
			}
		}
		if opts.Limit > 0 {
			next, err := pb.CoreV1().Pods("default").List(ctx, metav1.ListOptions{Limit: 3, Continue: got.Continue})
			if err != nil || len(next.Items) != 3 || next.Items[0].Name != "p3" || next.Items[0].Labels["x"] != "y" {
				t.Fatalf("second page: %v %v", next, err)
			}
		}
	}
	// A selector takes the decoding path, and still works over protobuf.
	sel, err := pb.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "x=y"})
	if err != nil || len(sel.Items) != 1 || sel.Items[0].Name != "p3" {
		t.Fatalf("selector list over protobuf: %v %v", sel, err)
	}
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}
