package nodeagent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// podManager runs one worker per pod bound to the node. Events only wake
// workers; what a worker does is decided from the informer's cache (and the
// static manifests) at that moment, never from the event itself.
type podManager struct {
	a *Agent

	lister atomic.Pointer[corelisters.PodLister]
	node   atomic.Pointer[corev1.Node]
	static *staticPods

	// backoff is shared by the workers, keyed by pod UID and container;
	// it is safe for concurrent use.
	backoff *flowcontrol.Backoff

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	ctx     context.Context // the workers' context, set by run
	wg      sync.WaitGroup
}

func newPodManager(a *Agent) *podManager {
	m := &podManager{
		a:       a,
		backoff: flowcontrol.NewBackOff(a.cfg.BackoffInitial, a.cfg.BackoffMax),
		workers: make(map[types.UID]*podWorker),
	}
	m.static = newStaticPods(m)
	return m
}

// setNode records the latest Node object (podCIDR, addresses) seen. Several goroutines
// report the Node (registration, status updates, the node informer) and may do so out of
// order: an older object never replaces a newer one, or the pod CIDR node IPAM set just
// after registration could be lost until the next status update, minutes later.
func (m *podManager) setNode(n *corev1.Node) {
	if n == nil {
		return
	}
	n = n.DeepCopy()
	for {
		cur := m.node.Load()
		if cur != nil && cur.UID == n.UID && olderRV(n.ResourceVersion, cur.ResourceVersion) {
			return
		}
		if m.node.CompareAndSwap(cur, n) {
			return
		}
	}
}

// olderRV reports whether resourceVersion a is older than b. Skiff's resourceVersions are
// store revisions, integers that only grow; anything else is not compared.
func olderRV(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}

// run watches the node's pods and keeps a worker for each until ctx ends.
func (m *podManager) run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	defer m.wg.Wait()

	// Static pods first: they must run even while the API is unreachable.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.static.run(ctx)
	}()

	factory := informers.NewSharedInformerFactoryWithOptions(m.a.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", m.a.cfg.NodeName).String()
		}))
	inf := factory.Core().V1().Pods()
	informer := inf.Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    m.onPod,
		UpdateFunc: func(_, obj any) { m.onPod(obj) },
		DeleteFunc: m.onPod,
	}); err != nil {
		return fmt.Errorf("pod informer: %w", err)
	}
	lister := inf.Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return nil // ctx ended
	}
	m.lister.Store(&lister)
	m.a.log.Info("pod cache synced")
	m.static.poke() // mirror pods can be written now

	// Take over what a previous agent left running, and remove what
	// belongs to pods that are gone, before anything new starts.
	m.housekeep(ctx)
	t := time.NewTicker(m.a.cfg.HousekeepingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.housekeep(ctx)
		}
	}
}

func (m *podManager) onPod(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName != m.a.cfg.NodeName {
		return
	}
	if isMirrorPod(pod) {
		// A mirror pod only reflects a static pod: its worker is the
		// static pod's, keyed by the static pod's UID.
		m.static.poke()
		return
	}
	m.wake(pod.UID, pod.Namespace, pod.Name)
}

// wake starts the pod's worker if it has none and asks it to sync.
func (m *podManager) wake(uid types.UID, ns, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil || m.ctx.Err() != nil {
		return
	}
	w := m.workers[uid]
	if w == nil {
		w = newPodWorker(m, uid, ns, name)
		m.workers[uid] = w
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			w.run(m.ctx)
		}()
	}
	w.poke()
}

// desired returns the pod as it should run now: the static manifest's or
// the cached API object, nil once it is gone (or was replaced by another
// pod of the same name).
func (m *podManager) desired(uid types.UID, ns, name string) *corev1.Pod {
	if p := m.static.get(uid); p != nil {
		return p
	}
	lp := m.lister.Load()
	if lp == nil {
		return nil
	}
	p, err := (*lp).Pods(ns).Get(name)
	if err != nil || p.UID != uid {
		return nil
	}
	return p
}

// cacheSynced reports whether desired can be trusted to say a pod is gone.
func (m *podManager) cacheSynced() bool { return m.lister.Load() != nil }

// workerDone unregisters a worker whose pod is gone, unless the pod came
// back meanwhile; it reports whether the worker may exit.
func (m *podManager) workerDone(w *podWorker) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.desired(w.uid, w.ns, w.name) != nil {
		return false
	}
	delete(m.workers, w.uid)
	return true
}

// housekeep wakes every worker (so back-offs, probes and volume refreshes
// progress without events) and cleans up after pods that have containers
// but no worker: pods deleted while the agent was down, or pods a previous
// agent ran and this one must take over.
func (m *podManager) housekeep(ctx context.Context) {
	list, err := m.a.cfg.Runtime.List(ctx)
	if err != nil {
		m.a.log.Warn("listing containers", "err", err)
		return
	}
	owners := map[types.UID]runtime.Status{}
	for _, st := range list {
		if uid, _, _, ok := parseContainerID(st.ID); ok {
			owners[uid] = st
		}
	}
	for _, uid := range m.a.podDirs() {
		if _, ok := owners[uid]; !ok {
			owners[uid] = runtime.Status{}
		}
	}
	m.mu.Lock()
	workers := make([]*podWorker, 0, len(m.workers))
	for _, w := range m.workers {
		workers = append(workers, w)
		delete(owners, w.uid)
	}
	m.mu.Unlock()
	for _, w := range workers {
		w.poke()
	}
	for uid, st := range owners {
		ns, name := st.Annotations[annoNamespace], st.Annotations[annoPodName]
		if ns != "" && m.desired(uid, ns, name) != nil {
			m.wake(uid, ns, name) // re-adopt: the worker takes over as is
			continue
		}
		if m.static.get(uid) != nil {
			continue // its worker is being started by the static source
		}
		m.a.log.Info("removing leftovers of a deleted pod", "uid", uid)
		if err := m.a.cleanupPod(ctx, uid, 2*time.Second); err != nil {
			m.a.log.Warn("cleaning up pod", "uid", uid, "err", err)
		}
	}
}

// Container IDs encode the pod's UID, the container's name and its attempt
// (its restart count), so that a restarted agent can tell, from the runtime
// alone, which container of which pod each one is.
func containerID(uid types.UID, name string, attempt int) string {
	return fmt.Sprintf("%s_%s_%d", uid, name, attempt)
}

func parseContainerID(id string) (uid types.UID, name string, attempt int, ok bool) {
	parts := strings.Split(id, "_")
	if len(parts) != 3 {
		return "", "", 0, false
	}
	if _, err := fmt.Sscanf(parts[2], "%d", &attempt); err != nil {
		return "", "", 0, false
	}
	return types.UID(parts[0]), parts[1], attempt, true
}
