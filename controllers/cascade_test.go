package controllers_test

import (
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// TestForegroundAndOrphanCascades: `kubectl delete --cascade=foreground` keeps the
// Deployment until its ReplicaSets and pods are gone; `--cascade=orphan` deletes the
// Deployment and leaves its ReplicaSet (and pods) running, no longer owned.
func TestForegroundAndOrphanCascades(t *testing.T) {
	c := startControlPlane(t, []string{"*", "-nodelifecycle", "-podgc"}, framework.Options{})
	ctx := c.ctx
	c.hollow.addNode(ctx, "node-1", "4", "8Gi")
	deps := c.client.AppsV1().Deployments("default")
	available := func() {
		eventually(t, 60*time.Second, "deployment available", func() error {
			d, err := deps.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			return rolledOut(d)
		})
	}
	if _, err := deps.Create(ctx, webDeployment(2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	available()
	fg := metav1.DeletePropagationForeground
	if err := deps.Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "foreground delete finished", func() error {
		d, err := deps.Get(ctx, "web", metav1.GetOptions{})
		rs, lerr := c.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		if lerr != nil {
			return lerr
		}
		pods, lerr := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if lerr != nil {
			return lerr
		}
		switch {
		case err == nil && len(rs.Items)+len(pods.Items) == 0:
			return fmt.Errorf("deployment still there (finalizers %v) with nothing left to delete", d.Finalizers)
		case err == nil:
			return fmt.Errorf("waiting: %d replicasets, %d pods", len(rs.Items), len(pods.Items))
		case !apierrors.IsNotFound(err):
			return err
		case len(rs.Items)+len(pods.Items) > 0:
			t.Fatalf("foreground: the deployment went before its dependents (%d replicasets, %d pods left)", len(rs.Items), len(pods.Items))
		}
		return nil
	})

	if _, err := deps.Create(ctx, webDeployment(2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	available()
	orphan := metav1.DeletePropagationOrphan
	if err := deps.Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "orphaning delete finished", func() error {
		if _, err := deps.Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("deployment: %v", err)
		}
		rs, err := c.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(rs.Items) != 1 || len(rs.Items[0].OwnerReferences) != 0 {
			return fmt.Errorf("want one unowned replicaset, got %d", len(rs.Items))
		}
		return nil
	})
	time.Sleep(2 * time.Second) // the collector must not come back for the orphans
	pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("orphaned pods: want 2 left running, got %d (%v)", len(pods.Items), err)
	}
}
