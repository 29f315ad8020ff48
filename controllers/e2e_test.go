package controllers_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/apitest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/framework"
)

// controlPlane is a real three-server control plane (raftstore + apiserver) with the
// controller manager running against server 0 and three hollow nodes.
type controlPlane struct {
	cp     *apitest.Cluster
	client kubernetes.Interface
	hollow *hollowNodes
	ctx    context.Context
}

func startControlPlane(t *testing.T, enabled []string, opts framework.Options) *controlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	cp := apitest.Start(t, 3, apitest.Options{})
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("CONTROLLERS_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m, err := controllers.NewManager(controllers.ManagerConfig{RestConfig: cp.RESTConfig(0), Enabled: enabled, Logger: logger, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	client := cp.Client(1) // the tests talk to another server than the controllers
	return &controlPlane{cp: cp, client: client, hollow: startHollow(t, ctx, client, 100*time.Millisecond), ctx: ctx}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func webDeployment(replicas int32) *appsv1.Deployment {
	surge, unavail := intstr.FromInt32(1), intstr.FromInt32(0)
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "testimage:v1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
			},
		},
	}
}

// rolledOut is what `kubectl rollout status` waits for.
func rolledOut(d *appsv1.Deployment) error {
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return fmt.Errorf("generation %d not observed (%d)", d.Generation, st.ObservedGeneration)
	case st.UpdatedReplicas < *d.Spec.Replicas:
		return fmt.Errorf("%d of %d updated", st.UpdatedReplicas, *d.Spec.Replicas)
	case st.Replicas > st.UpdatedReplicas:
		return fmt.Errorf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		return fmt.Errorf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return nil
}

func TestDeploymentRollsOutOnARealControlPlane(t *testing.T) {
	c := startControlPlane(t, []string{"scheduler", "replicaset", "deployment"}, framework.Options{})
	ctx := c.ctx
	for i := 1; i <= 3; i++ {
		c.hollow.addNode(ctx, fmt.Sprintf("node-%d", i), "4", "8Gi")
	}
	deployments := c.client.AppsV1().Deployments("default")
	if _, err := deployments.Create(ctx, webDeployment(10), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "10 replicas available", func() error {
		d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas != 10 {
			return fmt.Errorf("available %d", d.Status.AvailableReplicas)
		}
		return rolledOut(d)
	})
	pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" {
			t.Fatalf("pod %s not bound", p.Name)
		}
		perNode[p.Spec.NodeName]++
	}
	if len(pods.Items) != 10 || len(perNode) != 3 {
		t.Fatalf("%d pods over nodes %v", len(pods.Items), perNode)
	}

	// Rolling update with maxUnavailable 0: watch every pod change and check that the
	// ready, not-terminating pods never drop below 10.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var mu sync.Mutex
	minReady, events := 10, 0
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().Pods().Informer()
	check := func(any) {
		ready := 0
		for _, o := range inf.GetStore().List() {
			p := o.(*corev1.Pod)
			if p.Labels["app"] != "web" || p.DeletionTimestamp != nil {
				continue
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		mu.Lock()
		events++
		minReady = min(minReady, ready)
		mu.Unlock()
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, o any) { check(o) }, DeleteFunc: check})
	factory.Start(watchCtx.Done())
	cache.WaitForCacheSync(watchCtx.Done(), inf.HasSynced)
	defer func() { stopWatch(); factory.Shutdown() }()
	mu.Lock()
	minReady, events = 10, 0
	mu.Unlock()

	d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "testimage:v2"
	if _, err := deployments.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "rollout to v2", func() error {
		d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Annotations["deployment.kubernetes.io/revision"] != "2" {
			return fmt.Errorf("revision %q", d.Annotations["deployment.kubernetes.io/revision"])
		}
		return rolledOut(d)
	})
	mu.Lock()
	t.Logf("rolling update: %d pod events, minimum ready %d", events, minReady)
	if minReady < 10 {
		t.Errorf("ready pods dropped to %d during a maxUnavailable=0 rollout", minReady)
	}
	mu.Unlock()
	sets, err := c.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	revisions := map[string]int32{}
	for _, rs := range sets.Items {
		revisions[rs.Annotations["deployment.kubernetes.io/revision"]] = *rs.Spec.Replicas
	}
	if len(sets.Items) != 2 || revisions["1"] != 0 || revisions["2"] != 10 {
		t.Fatalf("replicasets by revision: %v", revisions)
	}
	final, _ := deployments.Get(ctx, "web", metav1.GetOptions{})
	for _, cond := range final.Status.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Reason != "NewReplicaSetAvailable" {
			t.Errorf("Progressing reason %q", cond.Reason)
		}
	}
}

func TestUnschedulablePodGetsReasonThenSchedules(t *testing.T) {
	c := startControlPlane(t, []string{"scheduler"}, framework.Options{})
	ctx := c.ctx
	for i := 1; i <= 3; i++ {
		c.hollow.addNode(ctx, fmt.Sprintf("small-%d", i), "1", "2Gi")
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "testimage",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}}}}
	if _, err := c.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "0/3 nodes are available: 3 Insufficient cpu."
	eventually(t, 30*time.Second, "PodScheduled=False", func() error {
		p, err := c.client.CoreV1().Pods("default").Get(ctx, "big", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == "Unschedulable" && cond.Message == want {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", p.Status.Conditions)
	})
	eventually(t, 30*time.Second, "FailedScheduling event", func() error {
		evs, err := c.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "big" && e.Reason == "FailedScheduling" && e.Message == want && e.Source.Component == "default-scheduler" {
				return nil
			}
		}
		return fmt.Errorf("no event among %d", len(evs.Items))
	})
	c.hollow.addNode(ctx, "large", "8", "16Gi")
	eventually(t, 30*time.Second, "bound to the new node", func() error {
		p, err := c.client.CoreV1().Pods("default").Get(ctx, "big", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.NodeName != "large" {
			return fmt.Errorf("node %q", p.Spec.NodeName)
		}
		return nil
	})
}

func TestCascadingDeleteAndNamespaceDeletion(t *testing.T) {
	c := startControlPlane(t, []string{"*", "-nodelifecycle", "-podgc"}, framework.Options{})
	ctx := c.ctx
	c.hollow.addNode(ctx, "node-1", "4", "8Gi")
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"default", "team"} {
		d := webDeployment(2)
		d.Namespace = ns
		if _, err := c.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"default", "team"} {
		eventually(t, 60*time.Second, "deployment in "+ns+" available", func() error {
			d, err := c.client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			return rolledOut(d)
		})
	}
	// Background cascade: the ReplicaSet and its pods go with the Deployment.
	if err := c.client.AppsV1().Deployments("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "replicasets and pods collected", func() error {
		rs, err := c.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		if len(rs.Items)+len(pods.Items) > 0 {
			return fmt.Errorf("%d replicasets, %d pods left", len(rs.Items), len(pods.Items))
		}
		return nil
	})
	// Namespace deletion empties the namespace, then removes it.
	if err := c.client.CoreV1().Namespaces().Delete(ctx, "team", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "namespace gone", func() error {
		ns, err := c.client.CoreV1().Namespaces().Get(ctx, "team", metav1.GetOptions{})
		if err == nil {
			return fmt.Errorf("still there, phase %s, finalizers %v", ns.Status.Phase, ns.Spec.Finalizers)
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	})
}
