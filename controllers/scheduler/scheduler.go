package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// DefaultSchedulerName is the spec.schedulerName this scheduler serves (an empty one is
// defaulted to it by the apiserver).
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Plugin registers the scheduler.
var Plugin = framework.Plugin{Name: "scheduler", EventSource: DefaultSchedulerName, New: New}

// Scheduler binds pending pods to nodes.
type Scheduler struct {
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger
	opts     framework.Options
	strategy Scoring

	pods   corelisters.PodLister
	synced []cache.InformerSynced
	cache  *schedCache
	queue  *framework.Queue

	mu      sync.Mutex
	unsched map[string]bool // keys of pods that fit nowhere, retried on cluster changes
	moves   uint64          // count of retryUnschedulable calls, to catch events during a decision

	rng   *rand.Rand // used by the single scheduling worker only
	start int

	bindSlots chan struct{}
	binds     sync.WaitGroup
}

var _ framework.Reconciler = (*Scheduler)(nil)

// New wires the scheduler to the pod and node informers. It starts nothing.
func New(d framework.Deps) (framework.Controller, error) {
	s := &Scheduler{
		client:    d.Client,
		recorder:  d.Recorder,
		log:       d.Logger,
		opts:      d.Options,
		strategy:  Scoring(d.Options.SchedulerScoring),
		cache:     newSchedCache(),
		queue:     framework.NewQueue("scheduler", d.Metrics, d.Logger),
		unsched:   map[string]bool{},
		rng:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		bindSlots: make(chan struct{}, max(1, d.Options.SchedulerBindWorkers)),
	}
	podInf := d.Informers.Core().V1().Pods()
	nodeInf := d.Informers.Core().V1().Nodes()
	s.pods = podInf.Lister()
	s.synced = []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onPod(nil, obj.(*corev1.Pod)) },
		UpdateFunc: func(old, obj any) { s.onPod(old.(*corev1.Pod), obj.(*corev1.Pod)) },
		DeleteFunc: s.onPodDelete,
	}); err != nil {
		return nil, fmt.Errorf("scheduler: pod handler: %w", err)
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			s.cache.SetNode(obj.(*corev1.Node))
			s.retryUnschedulable()
		},
		UpdateFunc: func(old, obj any) {
			s.cache.SetNode(obj.(*corev1.Node))
			if nodeSchedulingChanged(old.(*corev1.Node), obj.(*corev1.Node)) {
				s.retryUnschedulable()
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				s.cache.RemoveNode(n.Name)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("scheduler: node handler: %w", err)
	}
	return s, nil
}

// Run schedules with one worker (decisions are sequential, as kube-scheduler's) until ctx
// ends, then waits for the binds in flight.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.binds.Wait()
	return s.queue.Run(ctx, 1, s, s.synced...)
}

// needsScheduling: pending, ours, unbound, not being deleted, not finished.
func needsScheduling(p *corev1.Pod) bool {
	return p.Spec.NodeName == "" && p.DeletionTimestamp == nil &&
		(p.Spec.SchedulerName == "" || p.Spec.SchedulerName == DefaultSchedulerName) &&
		p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func terminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func (s *Scheduler) onPod(old, p *corev1.Pod) {
	switch {
	case p.Spec.NodeName != "" && !terminated(p):
		s.cache.AddPod(p)
	case p.Spec.NodeName != "":
		// A finished pod frees its node's resources: something may fit now.
		s.cache.RemovePod(p.UID)
		if old == nil || !terminated(old) {
			s.retryUnschedulable()
		}
	case needsScheduling(p):
		s.queue.AddObject(p)
	}
}

func (s *Scheduler) onPodDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	s.cache.RemovePod(p.UID)
	if p.Spec.NodeName != "" {
		s.retryUnschedulable()
		return
	}
	s.mu.Lock()
	delete(s.unsched, p.Namespace+"/"+p.Name)
	s.mu.Unlock()
}

// retryUnschedulable moves every parked pod back to the queue, as kube-scheduler's
// MoveAllToActiveOrBackoffQueue does on a cluster event that may make room.
func (s *Scheduler) retryUnschedulable() {
	s.mu.Lock()
	keys := s.unsched
	s.unsched = map[string]bool{}
	s.moves++
	s.mu.Unlock()
	for k := range keys {
		s.queue.Add(k)
	}
}

// nodeSchedulingChanged ignores heartbeats: only changes that can make a pod fit count.
func nodeSchedulingChanged(old, cur *corev1.Node) bool {
	return old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!reflect.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!reflect.DeepEqual(old.Labels, cur.Labels) ||
		!reflect.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable) ||
		readyStatus(old) != readyStatus(cur)
}

// Reconcile schedules one pod: decide, assume, and hand the bind to the background.
func (s *Scheduler) Reconcile(ctx context.Context, key string) (framework.Result, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return framework.Result{}, framework.Terminal(err)
	}
	pod, err := s.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return framework.Result{}, nil
	}
	if err != nil {
		return framework.Result{}, err
	}
	if !needsScheduling(pod) || s.cache.IsAssumed(pod.UID) {
		return framework.Result{}, nil
	}
	s.mu.Lock()
	movesBefore := s.moves
	s.mu.Unlock()
	node, err := s.cache.ScheduleAndAssume(pod, func(nodes []*NodeInfo) (string, error) {
		d, err := Schedule(s.strategy, pod, nodes, s.start, s.rng)
		s.start = d.Next
		return d.Node, err
	})
	if err != nil {
		// A cluster change that arrived while deciding may have made room: retry soon
		// rather than park the pod until the next change (kube-scheduler's in-flight events).
		s.mu.Lock()
		changed := s.moves != movesBefore
		if !changed {
			s.unsched[key] = true
		}
		s.mu.Unlock()
		if changed {
			s.queue.AddAfter(key, unschedulableRetryDelay)
		}
		if uerr := s.recordUnschedulable(ctx, pod, err); uerr != nil {
			return framework.Result{}, uerr
		}
		return framework.Result{RequeueAfter: s.opts.PodMaxInUnschedulablePodsDuration}, nil
	}
	select {
	case s.bindSlots <- struct{}{}:
	case <-ctx.Done():
		s.cache.Forget(pod.UID)
		return framework.Result{}, ctx.Err()
	}
	s.binds.Add(1)
	go func() {
		defer s.binds.Done()
		defer func() { <-s.bindSlots }()
		s.bind(ctx, pod, node)
	}()
	return framework.Result{}, nil
}

// bind posts pods/binding. A failure forgets the assumption and retries the pod later.
func (s *Scheduler) bind(ctx context.Context, pod *corev1.Pod, node string) {
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metaFor(pod.Namespace, pod.Name, pod.UID),
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, createOptions)
	if err == nil {
		s.cache.FinishBinding(pod.UID)
		s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %v/%v to %v", pod.Namespace, pod.Name, node)
		return
	}
	s.cache.Forget(pod.UID)
	if ctx.Err() != nil || apierrors.IsNotFound(err) {
		return
	}
	s.log.Info("bind failed", "pod", pod.Namespace+"/"+pod.Name, "node", node, "err", err)
	s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
	s.queue.AddAfter(pod.Namespace+"/"+pod.Name, bindRetryDelay)
}

// recordUnschedulable sets PodScheduled=False (reason Unschedulable, kube-scheduler's
// message) and records a FailedScheduling event.
func (s *Scheduler) recordUnschedulable(ctx context.Context, pod *corev1.Pod, fitErr error) error {
	msg := fitErr.Error()
	var fe *FitError
	if !errors.As(fitErr, &fe) && !errors.Is(fitErr, ErrNoNodesAvailable) {
		msg = "running scheduling plugins: " + msg
	}
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: msg}
	updated, changed := SetPodCondition(pod.Status, cond, time.Now())
	if !changed {
		return nil
	}
	cp := pod.DeepCopy()
	cp.Status = updated
	_, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cp, updateOptions)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update PodScheduled of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
