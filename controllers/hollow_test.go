package controllers_test

import (
	"context"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// hollowNodes stands in for node agents in these tests: each node is a Node object kept
// Ready with a renewed Lease, and the pods bound to it are marked Running and Ready after
// readyDelay, and removed at once when deleted (a kubelet that stops containers instantly).
type hollowNodes struct {
	t          *testing.T
	client     kubernetes.Interface
	readyDelay time.Duration
	mu         sync.Mutex
	nodes      map[string]bool // name -> heartbeating
	wg         sync.WaitGroup
}

func startHollow(t *testing.T, parent context.Context, client kubernetes.Interface, readyDelay time.Duration) *hollowNodes {
	ctx, cancel := context.WithCancel(parent)
	h := &hollowNodes{t: t, client: client, readyDelay: readyDelay, nodes: map[string]bool{}}
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().Pods().Informer()
	handle := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return
		}
		h.mu.Lock()
		ours := h.nodes[p.Spec.NodeName]
		h.mu.Unlock()
		if !ours {
			return
		}
		if p.DeletionTimestamp != nil {
			zero := int64(0)
			_ = client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			return
		}
		if p.Status.Phase == "" || p.Status.Phase == corev1.PodPending {
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				select {
				case <-time.After(h.readyDelay):
				case <-ctx.Done():
					return
				}
				h.markRunning(ctx, p)
			}()
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: handle, UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	// The informer's handlers add to wg: stop them (Shutdown waits for them) before Wait.
	t.Cleanup(func() { cancel(); factory.Shutdown(); h.wg.Wait() })
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				h.heartbeat(ctx)
			}
		}
	}()
	return h
}

func (h *hollowNodes) markRunning(ctx context.Context, p *corev1.Pod) {
	cur, err := h.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil || cur.UID != p.UID || cur.Status.Phase != corev1.PodPending && cur.Status.Phase != "" || cur.DeletionTimestamp != nil {
		return // running already, or finished: a node never restarts a finished pod
	}
	now := metav1.Now()
	cur.Status.Phase = corev1.PodRunning
	cur.Status.StartTime = &now
	cur.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	for _, c := range cur.Spec.Containers {
		cur.Status.ContainerStatuses = append(cur.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	if _, err := h.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		h.t.Logf("hollow: mark %s running: %v", p.Name, err)
	}
}

// addNode registers a Ready node with the given capacity that heartbeats until stopped.
func (h *hollowNodes) addNode(ctx context.Context, name, cpu, mem string) {
	h.t.Helper()
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods: resource.MustParse("110")}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	n, err := h.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatalf("create node %s: %v", name, err)
	}
	for attempt := 0; ; attempt++ {
		now := metav1.Now()
		n.Status = corev1.NodeStatus{Capacity: alloc, Allocatable: alloc, Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "hollow node is posting ready status",
			LastHeartbeatTime: now, LastTransitionTime: now}}}
		_, err := h.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err == nil {
			break
		}
		// The node controllers (lifecycle, IPAM) may write the new node first.
		if !apierrors.IsConflict(err) || attempt > 5 {
			h.t.Fatalf("node %s status: %v", name, err)
		}
		if n, err = h.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
			h.t.Fatalf("node %s: %v", name, err)
		}
	}
	h.mu.Lock()
	h.nodes[name] = true
	h.mu.Unlock()
	h.renewLease(ctx, name)
}

// stopHeartbeat makes a node silent, as if its agent died.
func (h *hollowNodes) stopHeartbeat(name string) {
	h.mu.Lock()
	h.nodes[name] = false
	h.mu.Unlock()
}

func (h *hollowNodes) heartbeat(ctx context.Context) {
	h.mu.Lock()
	var names []string
	for n, alive := range h.nodes {
		if alive {
			names = append(names, n)
		}
	}
	h.mu.Unlock()
	for _, n := range names {
		h.renewLease(ctx, n)
	}
}

func (h *hollowNodes) renewLease(ctx context.Context, name string) {
	leases := h.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	dur := int32(40)
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, _ = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: &dur, RenewTime: &now}}, metav1.CreateOptions{})
		return
	}
	if err != nil {
		return
	}
	l.Spec.RenewTime = &now
	_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
}
