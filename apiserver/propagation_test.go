package apiserver_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestDeletePropagationPolicySetsGCFinalizers: with no garbage collector running, a
// Foreground delete leaves the object marked with "foregroundDeletion" and an Orphan delete
// with "orphan" (the collector finishes both); Background deletes at once; a bad policy is a
// 422 that changes nothing.
func TestDeletePropagationPolicySetsGCFinalizers(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cms := c.Client(0).CoreV1().ConfigMaps("default")
	for _, n := range []string{"fg", "orphan", "bg", "bad", "both"} {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	policy := func(p metav1.DeletionPropagation) metav1.DeleteOptions {
		return metav1.DeleteOptions{PropagationPolicy: &p}
	}
	for name, want := range map[string]string{"fg": metav1.FinalizerDeleteDependents, "orphan": metav1.FinalizerOrphanDependents} {
		p := metav1.DeletePropagationForeground
		if name == "orphan" {
			p = metav1.DeletePropagationOrphan
		}
		if err := cms.Delete(ctx, name, policy(p)); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
		got, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s after a %s delete: want it held by its finalizer, got %v", name, p, err)
		}
		if got.DeletionTimestamp == nil || !slices.Equal(got.Finalizers, []string{want}) {
			t.Fatalf("%s after a %s delete: deletionTimestamp %v, finalizers %v; want [%s]", name, p, got.DeletionTimestamp, got.Finalizers, want)
		}
	}
	// Changing the policy of a pending deletion swaps the finalizer.
	if err := cms.Delete(ctx, "orphan", policy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	if got, err := cms.Get(ctx, "orphan", metav1.GetOptions{}); err != nil || !slices.Equal(got.Finalizers, []string{metav1.FinalizerDeleteDependents}) {
		t.Fatalf("re-deleted in foreground: %v %v", got.Finalizers, err)
	}
	if err := cms.Delete(ctx, "bg", policy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "bg", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("background delete: want gone, got %v", err)
	}
	if err := cms.Delete(ctx, "bad", policy("Sideways")); !apierrors.IsInvalid(err) {
		t.Fatalf("unknown policy: want 422, got %v", err)
	}
	yes := true
	p := metav1.DeletePropagationForeground
	if err := cms.Delete(ctx, "both", metav1.DeleteOptions{OrphanDependents: &yes, PropagationPolicy: &p}); !apierrors.IsInvalid(err) {
		t.Fatalf("orphanDependents with a policy: want 422, got %v", err)
	}
	for _, n := range []string{"bad", "both"} {
		if got, err := cms.Get(ctx, n, metav1.GetOptions{}); err != nil || got.DeletionTimestamp != nil {
			t.Fatalf("%s after a refused delete: %v %v", n, got, err)
		}
	}
}
