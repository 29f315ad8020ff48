package garbagecollector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/discover"
	"github.com/skiff-dev/skiff/controllers/internal/trim"
)

// Plugin registers the garbage collector.
var Plugin = framework.Plugin{Name: "garbagecollector", EventSource: "garbage-collector-controller", New: New}

// ignored resources are never collected (as upstream's ignoredResources).
var ignored = map[schema.GroupResource]bool{{Resource: "events"}: true, {Group: "events.k8s.io", Resource: "events"}: true}

// node is one object in the ownership graph.
type node struct {
	gvr        schema.GroupVersionResource
	ns, name   string
	owners     []metav1.OwnerReference
	deleting   bool
	foreground bool // deleting and waiting for its dependents
}

// sharedTyped are the resources whose typed informers the workload controllers hold
// anyway (the scheduler and every workload controller watch pods). The collector reads
// their metadata from those shared informers, as kube-controller-manager's does for every
// resource its typed factory knows, instead of a metadata informer of its own: a second
// copy of 30,000 pods' metadata was 27 MB of the leader's live heap. Every other resource
// it sees through a metadata informer, which is cheaper than a typed one nobody else holds.
var sharedTyped = map[schema.GroupVersionResource]bool{
	{Version: "v1", Resource: "pods"}:                       true,
	{Group: "apps", Version: "v1", Resource: "replicasets"}: true,
	{Group: "apps", Version: "v1", Resource: "deployments"}: true,
	{Group: "apps", Version: "v1", Resource: "daemonsets"}:  true,
	{Group: "batch", Version: "v1", Resource: "jobs"}:       true,
}

// Controller is the garbage collector. As kube-controller-manager's, it sees objects only
// through their metadata (metav1.Object of the shared typed informers, PartialObjectMetadata
// informers and the metadata client): the ownership graph needs nothing else, and whole
// objects of every kind cost the leader their full size in memory.
type Controller struct {
	client  kubernetes.Interface
	meta    metadata.Interface
	typed   informers.SharedInformerFactory
	log     *slog.Logger
	workers int
	queue   *framework.Queue

	mu         sync.RWMutex
	kinds      map[schema.GroupKind]discover.Resource
	stores     map[schema.GroupVersionResource]cache.Store
	objects    map[types.UID]*node
	dependents map[types.UID]map[types.UID]bool
}

// New builds the collector; it discovers resources only when it runs.
func New(d framework.Deps) (framework.Controller, error) {
	if d.Metadata == nil {
		return nil, errors.New("garbagecollector: needs a metadata client")
	}
	return &Controller{client: d.Client, meta: d.Metadata, typed: d.Informers, log: d.Logger, workers: d.Options.Workers,
		queue: framework.NewQueue("garbagecollector", d.Metrics, d.Logger)}, nil
}

func key(gvr schema.GroupVersionResource, ns, name string) string {
	return strings.Join([]string{gvr.Group, gvr.Version, gvr.Resource, ns, name}, "|")
}

func parseKey(k string) (schema.GroupVersionResource, string, string, error) {
	p := strings.Split(k, "|")
	if len(p) != 5 {
		return schema.GroupVersionResource{}, "", "", fmt.Errorf("bad key %q", k)
	}
	return schema.GroupVersionResource{Group: p[0], Version: p[1], Resource: p[2]}, p[3], p[4], nil
}

// Run discovers the resources, watches them all and collects until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	res, err := discover.Resources(c.client.Discovery())
	if err != nil {
		return fmt.Errorf("garbagecollector: %w", err)
	}
	c.kinds = map[schema.GroupKind]discover.Resource{}
	c.stores = map[schema.GroupVersionResource]cache.Store{}
	c.objects = map[types.UID]*node{}
	c.dependents = map[types.UID]map[types.UID]bool{}
	factory := metadatainformer.NewSharedInformerFactoryWithOptions(c.meta, 0, metadatainformer.WithTransform(trim.ManagedFields))
	var synced []cache.InformerSynced
	for _, r := range res {
		c.kinds[r.GVK().GroupKind()] = r
		if ignored[r.GVR.GroupResource()] || !r.Has("list") || !r.Has("watch") || !r.Has("delete") {
			continue
		}
		var inf cache.SharedIndexInformer
		if sharedTyped[r.GVR] && c.typed != nil {
			gi, err := c.typed.ForResource(r.GVR)
			if err != nil {
				return fmt.Errorf("garbagecollector: %w", err)
			}
			inf = gi.Informer()
		} else {
			inf = factory.ForResource(r.GVR).Informer()
		}
		gvr := r.GVR
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.observe(gvr, obj) },
			UpdateFunc: func(_, obj any) { c.observe(gvr, obj) },
			DeleteFunc: func(obj any) { c.forget(obj) },
		}); err != nil {
			return fmt.Errorf("garbagecollector: %w", err)
		}
		c.stores[gvr] = inf.GetStore()
		synced = append(synced, inf.HasSynced)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if c.typed != nil {
		// The manager started the informers its controllers asked for before Run; this starts
		// any shared one only the collector wants (its controller disabled). The manager's
		// Shutdown waits for them.
		c.typed.Start(ctx.Done())
	}
	return c.queue.Run(ctx, c.workers, c, synced...)
}

// object is obj's metadata, whether it came from a typed or a metadata informer.
func object(obj any) (metav1.Object, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, err := meta.Accessor(obj)
	return m, err == nil
}

func (c *Controller) observe(gvr schema.GroupVersionResource, obj any) {
	u, ok := object(obj)
	if !ok {
		return
	}
	fin := u.GetFinalizers()
	n := &node{gvr: gvr, ns: u.GetNamespace(), name: u.GetName(), owners: u.GetOwnerReferences(),
		deleting: u.GetDeletionTimestamp() != nil}
	n.foreground = n.deleting && slices.Contains(fin, metav1.FinalizerDeleteDependents)
	c.mu.Lock()
	if old, ok := c.objects[u.GetUID()]; ok {
		for _, r := range old.owners {
			delete(c.dependents[r.UID], u.GetUID())
		}
	}
	c.objects[u.GetUID()] = n
	for _, r := range n.owners {
		if c.dependents[r.UID] == nil {
			c.dependents[r.UID] = map[types.UID]bool{}
		}
		c.dependents[r.UID][u.GetUID()] = true
	}
	c.mu.Unlock()
	if len(n.owners) > 0 || (n.deleting && (n.foreground || slices.Contains(fin, metav1.FinalizerOrphanDependents))) {
		c.queue.Add(key(gvr, n.ns, n.name))
	}
}

func (c *Controller) forget(obj any) {
	u, ok := object(obj)
	if !ok {
		return
	}
	c.mu.Lock()
	n := c.objects[u.GetUID()]
	delete(c.objects, u.GetUID())
	var wake []string
	for dep := range c.dependents[u.GetUID()] {
		if d, ok := c.objects[dep]; ok {
			wake = append(wake, key(d.gvr, d.ns, d.name)) // its owner is gone
		}
	}
	if n != nil {
		for _, r := range n.owners {
			delete(c.dependents[r.UID], u.GetUID())
			if o, ok := c.objects[r.UID]; ok && o.foreground {
				wake = append(wake, key(o.gvr, o.ns, o.name)) // a blocking dependent went
			}
		}
	}
	c.mu.Unlock()
	for _, k := range wake {
		c.queue.Add(k)
	}
}

// Reconcile handles one object: its own deletion policy if it is being deleted, then its
// owners.
func (c *Controller) Reconcile(ctx context.Context, k string) (framework.Result, error) {
	gvr, ns, name, err := parseKey(k)
	if err != nil {
		return framework.Result{}, framework.Terminal(err)
	}
	store := c.stores[gvr]
	if store == nil {
		return framework.Result{}, nil
	}
	sk := name
	if ns != "" {
		sk = ns + "/" + name
	}
	obj, exists, err := store.GetByKey(sk)
	if err != nil || !exists {
		return framework.Result{}, err
	}
	u, ok := object(obj)
	if !ok {
		return framework.Result{}, framework.Terminal(fmt.Errorf("%s %s: no object metadata", gvr.Resource, sk))
	}
	if u.GetDeletionTimestamp() != nil {
		fin := u.GetFinalizers()
		switch {
		case slices.Contains(fin, metav1.FinalizerOrphanDependents):
			return framework.Result{}, c.orphanDependents(ctx, gvr, u)
		case slices.Contains(fin, metav1.FinalizerDeleteDependents):
			return c.deleteDependents(ctx, gvr, u)
		}
	}
	refs := u.GetOwnerReferences()
	if len(refs) == 0 {
		return framework.Result{}, nil
	}
	state := map[types.UID]OwnerState{}
	for _, r := range refs {
		s, err := c.ownerState(ctx, r, ns)
		if err != nil {
			return framework.Result{}, err
		}
		state[r.UID] = s
	}
	res := c.meta.Resource(gvr).Namespace(ns)
	uid := u.GetUID()
	switch DecideDependent(refs, state) {
	case DeleteBackground, DeleteForeground:
		if u.GetDeletionTimestamp() != nil {
			return framework.Result{}, nil
		}
		policy := metav1.DeletePropagationBackground
		if DecideDependent(refs, state) == DeleteForeground {
			policy = metav1.DeletePropagationForeground
		}
		c.log.Info("deleting object whose owners are gone", "resource", gvr.Resource, "object", sk, "propagation", policy)
		err := res.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return framework.Result{}, fmt.Errorf("delete %s %s: %w", gvr.Resource, sk, err)
		}
	case RemoveDanglingRef:
		return framework.Result{}, c.setOwnerRefs(ctx, gvr, u, RemainingRefs(refs, state))
	}
	return framework.Result{}, nil
}

// ownerState finds an owner in the graph, or asks the API (the graph may lag).
func (c *Controller) ownerState(ctx context.Context, r metav1.OwnerReference, ns string) (OwnerState, error) {
	c.mu.RLock()
	n, ok := c.objects[r.UID]
	c.mu.RUnlock()
	if ok {
		if n.foreground {
			return OwnerDeletingForeground, nil
		}
		return OwnerPresent, nil
	}
	info, ok := c.kinds[discover.FromOwnerRef(r)]
	if !ok {
		return OwnerPresent, nil // a kind this server does not serve: leave the object alone
	}
	var res metadata.ResourceInterface = c.meta.Resource(info.GVR)
	if info.Namespaced {
		res = c.meta.Resource(info.GVR).Namespace(ns)
	}
	owner, err := res.Get(ctx, r.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return OwnerAbsent, nil
	case err != nil:
		return OwnerPresent, fmt.Errorf("look up owner %s %s: %w", r.Kind, r.Name, err)
	case owner.GetUID() != r.UID:
		return OwnerAbsent, nil
	case owner.GetDeletionTimestamp() != nil && slices.Contains(owner.GetFinalizers(), metav1.FinalizerDeleteDependents):
		return OwnerDeletingForeground, nil
	}
	return OwnerPresent, nil
}

func (c *Controller) dependentsOf(uid types.UID) []*node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*node
	for d := range c.dependents[uid] {
		if n, ok := c.objects[d]; ok {
			out = append(out, n)
		}
	}
	return out
}

// orphanDependents removes the owner's references from its dependents, then its finalizer.
func (c *Controller) orphanDependents(ctx context.Context, gvr schema.GroupVersionResource, owner metav1.Object) error {
	for _, d := range c.dependentsOf(owner.GetUID()) {
		obj, exists, err := c.stores[d.gvr].GetByKey(storeKey(d.ns, d.name))
		if err != nil || !exists {
			continue
		}
		u, ok := object(obj)
		if !ok {
			continue
		}
		var keep []metav1.OwnerReference
		for _, r := range u.GetOwnerReferences() {
			if r.UID != owner.GetUID() {
				keep = append(keep, r)
			}
		}
		if err := c.setOwnerRefs(ctx, d.gvr, u, keep); err != nil {
			return err
		}
	}
	return c.removeFinalizer(ctx, gvr, owner, metav1.FinalizerOrphanDependents)
}

// deleteDependents deletes the owner's dependents (in foreground when they block it) and
// drops its finalizer once no blocking dependent is left.
func (c *Controller) deleteDependents(ctx context.Context, gvr schema.GroupVersionResource, owner metav1.Object) (framework.Result, error) {
	blocking := 0
	for _, d := range c.dependentsOf(owner.GetUID()) {
		var ref *metav1.OwnerReference
		for i := range d.owners {
			if d.owners[i].UID == owner.GetUID() {
				ref = &d.owners[i]
			}
		}
		if ref == nil {
			continue
		}
		if Blocking(*ref) {
			blocking++
		}
		if d.deleting {
			continue
		}
		policy := metav1.DeletePropagationBackground
		if Blocking(*ref) {
			policy = metav1.DeletePropagationForeground
		}
		var res metadata.ResourceInterface = c.meta.Resource(d.gvr)
		if d.ns != "" {
			res = c.meta.Resource(d.gvr).Namespace(d.ns)
		}
		if err := res.Delete(ctx, d.name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
			return framework.Result{}, fmt.Errorf("delete dependent %s %s: %w", d.gvr.Resource, d.name, err)
		}
	}
	if blocking > 0 {
		return framework.Result{RequeueAfter: 5 * time.Second}, nil // dependents' deletions wake it sooner
	}
	return framework.Result{}, c.removeFinalizer(ctx, gvr, owner, metav1.FinalizerDeleteDependents)
}

func storeKey(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// setOwnerRefs replaces an object's ownerReferences, guarded by its resourceVersion.
func (c *Controller) setOwnerRefs(ctx context.Context, gvr schema.GroupVersionResource, u metav1.Object, refs []metav1.OwnerReference) error {
	meta := map[string]any{"ownerReferences": refs, "resourceVersion": u.GetResourceVersion(), "uid": u.GetUID()}
	if len(refs) == 0 {
		meta["ownerReferences"] = nil
	}
	return c.mergePatch(ctx, gvr, u, meta)
}

func (c *Controller) removeFinalizer(ctx context.Context, gvr schema.GroupVersionResource, u metav1.Object, f string) error {
	var keep []string
	for _, x := range u.GetFinalizers() {
		if x != f {
			keep = append(keep, x)
		}
	}
	meta := map[string]any{"finalizers": keep, "resourceVersion": u.GetResourceVersion(), "uid": u.GetUID()}
	if len(keep) == 0 {
		meta["finalizers"] = nil
	}
	return c.mergePatch(ctx, gvr, u, meta)
}

func (c *Controller) mergePatch(ctx context.Context, gvr schema.GroupVersionResource, u metav1.Object, meta map[string]any) error {
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	var res metadata.ResourceInterface = c.meta.Resource(gvr)
	if u.GetNamespace() != "" {
		res = c.meta.Resource(gvr).Namespace(u.GetNamespace())
	}
	_, err = res.Patch(ctx, u.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patch %s %s: %w", gvr.Resource, u.GetName(), err)
	}
	return nil
}
