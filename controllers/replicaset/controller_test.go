package replicaset

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers/framework"
)

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Generation: 1},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}},
	}
}

// start runs the controller on a fake clientset whose creates fill in generateName and UID,
// as the apiserver would.
func start(t *testing.T, objs ...runtime.Object) (*fake.Clientset, *atomic.Int32) {
	t.Helper()
	client := fake.NewClientset(objs...)
	var creates atomic.Int32
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			p.Name = p.GenerateName + rand.String(5)
		}
		p.UID = types.UID("uid-" + p.Name)
		creates.Add(1)
		return false, nil, nil
	})
	metrics, _ := framework.NewMetrics(nil)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(framework.Deps{Client: client, Informers: factory, Recorder: record.NewFakeRecorder(1000),
		Logger: slog.New(slog.DiscardHandler), Metrics: metrics.For("replicaset"), Options: framework.Options{}.Defaulted()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })
	return client, &creates
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pods(t *testing.T, c *fake.Clientset) []corev1.Pod {
	l, err := c.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func TestCreatesExactlyReplicasAndReportsStatus(t *testing.T) {
	client, creates := start(t, newRS("web", 5))
	waitFor(t, "5 pods and status", func() bool {
		rs, _ := client.AppsV1().ReplicaSets("ns").Get(context.Background(), "web", metav1.GetOptions{})
		return len(pods(t, client)) == 5 && rs.Status.Replicas == 5 && rs.Status.ObservedGeneration == 1
	})
	time.Sleep(200 * time.Millisecond) // give a buggy controller time to over-create
	if n := creates.Load(); n != 5 {
		t.Fatalf("%d creates, want 5", n)
	}
	for _, p := range pods(t, client) {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.UID != "uid-web" || p.Labels["app"] != "web" {
			t.Fatalf("pod %s: ref %v labels %v", p.Name, ref, p.Labels)
		}
	}
}

func TestScaleDownDeletesUnassignedFirst(t *testing.T) {
	rs := newRS("web", 3)
	ref := metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
	var objs []runtime.Object
	objs = append(objs, rs)
	for i, node := range []string{"n1", "n2", "", "n3"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p" + string(rune('0'+i)), Namespace: "ns", UID: types.UID("p" + string(rune('0'+i))),
			Labels: map[string]string{"app": "web"}, OwnerReferences: []metav1.OwnerReference{*ref}},
			Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		objs = append(objs, p)
	}
	client, _ := start(t, objs...)
	waitFor(t, "3 pods", func() bool { return len(pods(t, client)) == 3 })
	for _, p := range pods(t, client) {
		if p.Spec.NodeName == "" {
			t.Fatalf("kept the unassigned pod %s", p.Name)
		}
	}
}

func TestAdoptsOrphansAndReleasesNonMatching(t *testing.T) {
	rs := newRS("web", 2)
	ref := metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "ns", UID: "orphan", Labels: map[string]string{"app": "web"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	stray := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: "ns", UID: "stray", Labels: map[string]string{"app": "other"},
		OwnerReferences: []metav1.OwnerReference{*ref}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	client, creates := start(t, rs, orphan, stray)
	waitFor(t, "adoption, release and one creation", func() bool {
		o, _ := client.CoreV1().Pods("ns").Get(context.Background(), "orphan", metav1.GetOptions{})
		s, _ := client.CoreV1().Pods("ns").Get(context.Background(), "stray", metav1.GetOptions{})
		return metav1.IsControlledBy(o, rs) && metav1.GetControllerOf(s) == nil && len(pods(t, client)) == 3
	})
	if creates.Load() != 1 {
		t.Fatalf("%d creates, want 1 (the adopted orphan counts)", creates.Load())
	}
}
