package apiserver_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestEvictionIsAGracefulDelete: a bound pod is marked for deletion with its grace period
// (its node finishes it), an unbound one goes at once, and the Eviction must name the pod.
func TestEvictionIsAGracefulDelete(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods := c.Client(0).CoreV1().Pods("default")
	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "bound"}, Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "x"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unbound"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}},
	} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "bound"}}); err != nil {
		t.Fatalf("evict bound: %v", err)
	}
	p, err := pods.Get(ctx, "bound", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("evicted bound pod: want marked for deletion with grace 30, got %v %v", p.ObjectMeta, err)
	}
	if err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "unbound"}}); err != nil {
		t.Fatalf("evict unbound: %v", err)
	}
	if _, err := pods.Get(ctx, "unbound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("evicted unbound pod: want 404, got %v", err)
	}
	if err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "missing"}}); !apierrors.IsNotFound(err) {
		t.Fatalf("evict a missing pod: want 404, got %v", err)
	}
	res := c.Client(0).CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("bound").SubResource("eviction").
		Body([]byte(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"other"}}`)).SetHeader("Content-Type", "application/json").Do(ctx)
	if err := res.Error(); !apierrors.IsBadRequest(err) {
		t.Fatalf("eviction naming another pod: want 400, got %v", err)
	}
}
