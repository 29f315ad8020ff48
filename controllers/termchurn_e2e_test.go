package controllers_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apitest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/framework"
)

// churnPods is enough pods that binding is still under way when the churn ends.
const churnPods = 600

// TestSchedulingSurvivesTermChurn: leadership that comes and goes while the processes live
// (elections under CPU starvation) stops and restarts the controller manager many times
// while pods are being scheduled and bound. Every stop must end promptly (the server's
// leader loop waits on it before the next term can start), and the last term must bind
// every pod: nothing may be left assumed, queued nowhere, or bound twice.
func TestSchedulingSurvivesTermChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	cp := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := cp.Client(1)
	hollow := startHollow(t, ctx, client, 50*time.Millisecond)
	for i := range churnPods / 100 { // 110 pods fit on each
		hollow.addNode(ctx, fmt.Sprintf("churn-%d", i), "4", "8Gi")
	}
	d := webDeployment(churnPods)
	d.Name = "churn"
	d.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newManager := func() *controllers.Manager {
		log := slog.New(slog.DiscardHandler)
		if os.Getenv("CONTROLLERS_LOG") != "" {
			log = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
		m, err := controllers.NewManager(controllers.ManagerConfig{RestConfig: cp.RESTConfig(0),
			Enabled: []string{"scheduler", "replicaset", "deployment"}, Logger: log, Options: framework.Options{}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	unbound := func() (int, error) {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return 0, err
		}
		n, cond := 0, 0
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" {
				n++
				if len(p.Status.Conditions) > 0 {
					cond++
				}
			}
		}
		if n > 0 || len(pods.Items) != churnPods {
			return n + max(0, churnPods-len(pods.Items)), fmt.Errorf("%d pods, %d unbound (%d with a condition)", len(pods.Items), n, cond)
		}
		return 0, nil
	}
	// Terms of 30 to 250 ms, each a fresh manager as the server builds one per term.
	rng := rand.New(rand.NewPCG(1, 2))
	for term := 0; term < 12; term++ {
		tctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		m := newManager()
		go func() { done <- m.Run(tctx) }()
		time.Sleep(time.Duration(30+rng.IntN(220)) * time.Millisecond)
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("term %d: manager: %v", term, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("term %d: the manager did not stop within 20 s of losing leadership", term)
		}
	}
	_, err := unbound()
	t.Logf("after the churn: %v", err)
	last, stop := context.WithCancel(ctx)
	defer stop()
	m := newManager()
	go func() { _ = m.Run(last) }()
	eventually(t, 4*time.Minute, "every pod bound in the last term", func() error {
		_, err := unbound()
		return err
	})
}
