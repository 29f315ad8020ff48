package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// harness runs the scheduler against client-go's fake clientset, whose pods/binding is
// emulated by setting spec.nodeName, as the apiserver does.
type harness struct {
	t      *testing.T
	client *fake.Clientset
	events *record.FakeRecorder
	mu     sync.Mutex
	binds  int
	// failBinds is how many of the next binds the API refuses (with a 500).
	failBinds, failed int
}

func startScheduler(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{t: t, client: fake.NewClientset(objs...), events: record.NewFakeRecorder(1000)}
	h.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := a.(k8stesting.CreateAction).GetObject().(*corev1.Binding)
		h.mu.Lock()
		refuse := h.failBinds > 0
		if refuse {
			h.failBinds--
			h.failed++
		}
		h.mu.Unlock()
		if refuse {
			return true, nil, apierrors.NewInternalError(errors.New("leader changed"))
		}
		obj, err := h.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		p := obj.(*corev1.Pod).DeepCopy()
		p.Spec.NodeName = b.Target.Name
		h.mu.Lock()
		h.binds++
		h.mu.Unlock()
		return true, b, h.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), p, b.Namespace)
	})
	metrics, err := framework.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(h.client, 0)
	c, err := New(framework.Deps{Client: h.client, Informers: factory, Recorder: h.events,
		Logger: slog.New(slog.DiscardHandler), Metrics: metrics.For("scheduler"), Options: framework.Options{}.Defaulted()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })
	return h
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) pod(name string) *corev1.Pod {
	p, err := h.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func TestSchedulerBindsAndSpreads(t *testing.T) {
	objs := []runtime.Object{node("n1", "4", "8Gi", 110), node("n2", "4", "8Gi", 110), node("n3", "4", "8Gi", 110)}
	for i := range 9 {
		objs = append(objs, pod("p"+string(rune('a'+i)), "100m", "100Mi", withOwner("rs")))
	}
	h := startScheduler(t, objs...)
	perNode := map[string]int{}
	h.waitFor("all pods bound", func() bool {
		clear(perNode)
		for i := range 9 {
			n := h.pod("p" + string(rune('a'+i))).Spec.NodeName
			if n == "" {
				return false
			}
			perNode[n]++
		}
		return true
	})
	for n, c := range perNode {
		if c != 3 {
			t.Errorf("node %s has %d pods, want 3 on each (%v)", n, c, perNode)
		}
	}
	if h.binds != 9 {
		t.Errorf("binds = %d, want 9 (one per pod)", h.binds)
	}
}

// A bind the API refuses (here a 500, as a leader change gives a forwarded write) leaves the
// pod neither assumed nor lost: it is scheduled again and bound, and says why it waited.
func TestFailedBindIsRetried(t *testing.T) {
	h := startScheduler(t, node("n1", "4", "8Gi", 110))
	h.mu.Lock()
	h.failBinds = 1
	h.mu.Unlock()
	if _, err := h.client.CoreV1().Pods("default").Create(context.Background(), pod("a", "100m", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the pod bound after its first bind failed", func() bool { return h.pod("a").Spec.NodeName == "n1" })
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed != 1 || h.binds != 1 {
		t.Errorf("refused binds %d, binds that went through %d: want one of each", h.failed, h.binds)
	}
	var warned bool
	for len(h.events.Events) > 0 && !warned {
		warned = strings.HasPrefix(<-h.events.Events, "Warning FailedScheduling Binding rejected")
	}
	if !warned {
		t.Errorf("no FailedScheduling event for the refused bind")
	}
}

func TestSchedulerAssumedPodsCountBeforeBindConfirms(t *testing.T) {
	// Two pods that each need most of the only node: the second must wait even though the
	// first one's bind has not reached the informer when the second is decided.
	h := startScheduler(t, node("n1", "1", "8Gi", 110), pod("a", "600m", ""), pod("b", "600m", ""))
	h.waitFor("one pod bound, one unschedulable", func() bool {
		a, b := h.pod("a"), h.pod("b")
		bound, other := a, b
		if a.Spec.NodeName == "" {
			bound, other = b, a
		}
		if bound.Spec.NodeName == "" {
			return false
		}
		for _, c := range other.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return c.Message == "0/1 nodes are available: 1 Insufficient cpu."
			}
		}
		return false
	})
}

func TestUnschedulablePodIsRetriedWhenANodeAppears(t *testing.T) {
	h := startScheduler(t, node("small", "1", "1Gi", 110), pod("big", "2", ""))
	h.waitFor("PodScheduled=False", func() bool {
		for _, c := range h.pod("big").Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return c.Message == "0/1 nodes are available: 1 Insufficient cpu."
			}
		}
		return false
	})
	if !drainHas(h.events, "Warning FailedScheduling 0/1 nodes are available: 1 Insufficient cpu.") {
		t.Error("no FailedScheduling event")
	}
	if _, err := h.client.CoreV1().Nodes().Create(context.Background(), node("large", "8", "8Gi", 110), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("bound to the new node", func() bool { return h.pod("big").Spec.NodeName == "large" })
}

func TestNoNodes(t *testing.T) {
	h := startScheduler(t, pod("p", "", ""))
	h.waitFor("condition", func() bool {
		for _, c := range h.pod("p").Status.Conditions {
			if c.Type == corev1.PodScheduled {
				return c.Message == "no nodes available to schedule pods"
			}
		}
		return false
	})
}

func drainHas(r *record.FakeRecorder, want string) bool {
	for {
		select {
		case e := <-r.Events:
			if strings.HasPrefix(e, want) {
				return true
			}
		default:
			return false
		}
	}
}
