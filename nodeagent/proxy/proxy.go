// Package proxy is skiff's kube-proxy: it programs the node's kernel with
// nftables (through sigs.k8s.io/knftables, in a table of its own) so that
// Services' cluster IPs and node ports reach their ready endpoints. The
// rules follow upstream kube-proxy's nftables mode: a verdict map from
// address, protocol and port to a chain per Service port, a chain per
// endpoint doing the DNAT, random choice with numgen, masquerade by mark in
// postrouting, ClientIP affinity with a timeout set, and a reject for a
// Service with no ready endpoints. Syncs are incremental: only the chains
// and map elements of Services that changed are written, in one
// transaction.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

// TableName is the proxy's nftables table (family ip); it never touches
// any other.
const TableName = "skiff-proxy"

// Config configures a Proxier.
type Config struct {
	// NFT is the table's interface, from knftables.New(knftables.IPv4Family,
	// TableName) (or a fake in unit tests).
	NFT knftables.Interface
	// Informers gives the Service and EndpointSlice informers; the caller
	// starts it.
	Informers informers.SharedInformerFactory
	// NodeName is this node's: its endpoints serve Services whose traffic
	// policy is Local.
	NodeName string
	// ClusterCIDR is the pods' CIDR (see renderOptions).
	ClusterCIDR string
	// MinSyncPeriod bounds how often the kernel is written (default 100 ms).
	MinSyncPeriod time.Duration
	// Conntrack flushes stale UDP entries; nil does nothing (unit tests).
	Conntrack Conntrack
	Logger    *slog.Logger
}

// Conntrack removes conntrack entries of endpoints that went away.
type Conntrack interface {
	// ClearUDP removes UDP entries sent to dst:port (port 0: any) and
	// answered by endpoint (nil: by anyone).
	ClearUDP(dst string, port int32, endpoint string) error
}

// Proxier keeps the node's nftables table in line with the cluster's
// Services and EndpointSlices.
type Proxier struct {
	cfg      Config
	log      *slog.Logger
	services cacheLister
	trigger  chan struct{}

	mu      sync.Mutex
	dirty   map[types.NamespacedName]bool
	podCIDR string
	baseDue bool // pod CIDR changed: rewrite pod-egress

	// Owned by the sync loop.
	applied  map[types.NamespacedName]*rulesAndPorts
	synced   bool
	lastSync time.Time
}

type rulesAndPorts struct {
	rules *ruleSet
	ports []servicePort
}

// cacheLister reads Services and their slices; informers in production.
type cacheLister interface {
	service(key types.NamespacedName) (*corev1.Service, error)
	slices(key types.NamespacedName) ([]*discoveryv1.EndpointSlice, error)
	all() []types.NamespacedName
	hasSynced() bool
}

// New prepares a Proxier and registers its informer handlers; Run programs
// the kernel.
func New(cfg Config) (*Proxier, error) {
	if cfg.NFT == nil || cfg.Informers == nil {
		return nil, errors.New("proxy: Config.NFT and Config.Informers are required")
	}
	if cfg.MinSyncPeriod == 0 {
		cfg.MinSyncPeriod = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxier{
		cfg:     cfg,
		log:     cfg.Logger,
		trigger: make(chan struct{}, 1),
		dirty:   map[types.NamespacedName]bool{},
		applied: map[types.NamespacedName]*rulesAndPorts{},
	}
	svcInf := cfg.Informers.Core().V1().Services()
	sliceInf := cfg.Informers.Discovery().V1().EndpointSlices()
	// Slices by Service: a full sync looks up every Service's slices, and a
	// namespace-wide list with a selector each time made that quadratic.
	if err := sliceInf.Informer().AddIndexers(cache.Indexers{sliceIndex: sliceService}); err != nil {
		return nil, fmt.Errorf("proxy: EndpointSlice index: %w", err)
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    p.onObject,
		UpdateFunc: func(_, obj any) { p.onObject(obj) },
		DeleteFunc: p.onObject,
	}
	svcReg, err := svcInf.Informer().AddEventHandler(h)
	if err != nil {
		return nil, err
	}
	sliceReg, err := sliceInf.Informer().AddEventHandler(h)
	if err != nil {
		return nil, err
	}
	// Synced when the handlers have seen every object of the first list, not when the
	// informer says so: an informer reports synced as it pops its last initial object,
	// before that object is in its store, and a first sync then missed a Service.
	p.services = &informerLister{svc: svcInf.Lister(), slice: sliceInf.Informer().GetIndexer(), synced: []cache.InformerSynced{
		svcReg.HasSynced, sliceReg.HasSynced,
	}}
	return p, nil
}

// onObject marks the Service an event is about as dirty.
func (p *Proxier) onObject(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	var key types.NamespacedName
	switch o := obj.(type) {
	case *corev1.Service:
		key = types.NamespacedName{Namespace: o.Namespace, Name: o.Name}
	case *discoveryv1.EndpointSlice:
		name := o.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			return
		}
		key = types.NamespacedName{Namespace: o.Namespace, Name: name}
	default:
		return
	}
	p.mu.Lock()
	p.dirty[key] = true
	p.mu.Unlock()
	p.poke()
}

func (p *Proxier) poke() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// SetPodCIDR tells the proxy the node's pod CIDR, whose traffic to outside
// the cluster is masqueraded.
func (p *Proxier) SetPodCIDR(cidr string) {
	p.mu.Lock()
	changed := p.podCIDR != cidr
	p.podCIDR = cidr
	p.baseDue = p.baseDue || changed
	p.mu.Unlock()
	if changed {
		p.poke()
	}
}

// Run waits for the informers to sync, replaces the table atomically with
// a full rendering, then applies changes as they come until ctx ends. The
// table stays when Run returns: a restarted agent replaces it, and traffic
// flows meanwhile.
func (p *Proxier) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), p.services.hasSynced) {
		return ctx.Err()
	}
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	for {
		if wait := p.cfg.MinSyncPeriod - time.Since(p.lastSync); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		if err := p.sync(ctx); err != nil {
			p.log.Warn("proxy sync", "err", err)
			retry.Reset(time.Second)
		}
		p.lastSync = time.Now()
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		case <-retry.C:
		}
	}
}

// sync writes what changed since the last sync in one transaction; the
// first sync replaces the whole table.
func (p *Proxier) sync(ctx context.Context) error {
	began := time.Now()
	p.mu.Lock()
	dirty := p.dirty
	p.dirty = map[types.NamespacedName]bool{}
	podCIDR, baseDue := p.podCIDR, p.baseDue
	p.baseDue = false
	p.mu.Unlock()

	full := !p.synced
	if full {
		dirty = map[types.NamespacedName]bool{}
		for _, k := range p.services.all() {
			dirty[k] = true
		}
	}
	opt := renderOptions{ClusterCIDR: p.cfg.ClusterCIDR}
	tx := p.cfg.NFT.NewTransaction()
	if full {
		// Add then delete then add: the table is replaced in one
		// transaction, whatever an earlier run left.
		tx.Add(&knftables.Table{})
		tx.Delete(&knftables.Table{})
		baseObjects(tx, opt, podCIDR)
	} else if baseDue {
		podEgressRules(tx, opt, podCIDR)
	}
	var d diff
	next := map[types.NamespacedName]*rulesAndPorts{}
	for key := range dirty {
		svc, err := p.services.service(key)
		if err != nil {
			p.requeue(key)
			continue
		}
		slices, err := p.services.slices(key)
		if err != nil {
			p.requeue(key)
			continue
		}
		ports := servicePorts(svc, slices, p.cfg.NodeName)
		rs := render(ports, opt)
		var old *ruleSet
		if a := p.applied[key]; a != nil && !full {
			old = a.rules
		}
		d.service(old, rs)
		next[key] = &rulesAndPorts{rules: rs, ports: ports}
	}
	if !d.apply(tx) && !full && !baseDue {
		return nil
	}
	start := time.Now()
	if err := p.cfg.NFT.Run(ctx, tx); err != nil {
		p.mu.Lock()
		for key := range dirty {
			p.dirty[key] = true
		}
		p.baseDue = p.baseDue || baseDue
		p.mu.Unlock()
		if !full {
			p.synced = false // the kernel may differ from what we think: start over
		}
		return fmt.Errorf("nft transaction (%d operations): %w", tx.NumOperations(), err)
	}
	if full {
		// Info: bench services reads the full sync's cost from this line.
		p.log.Info("proxy full sync", "services", len(dirty), "operations", tx.NumOperations(),
			"render", start.Sub(began), "nft", time.Since(start), "took", time.Since(began))
	} else {
		p.log.Debug("proxy synced", "services", len(dirty), "operations", tx.NumOperations(),
			"render", start.Sub(began), "nft", time.Since(start), "took", time.Since(began))
	}
	if full {
		p.applied = map[types.NamespacedName]*rulesAndPorts{}
	}
	for key, n := range next {
		old := p.applied[key]
		p.clearStale(old, n)
		if len(n.ports) == 0 && len(n.rules.chains) == 0 && len(n.rules.elements) == 0 {
			delete(p.applied, key)
		} else {
			p.applied[key] = n
		}
	}
	p.synced = true
	return nil
}

func (p *Proxier) requeue(key types.NamespacedName) {
	p.mu.Lock()
	p.dirty[key] = true
	p.mu.Unlock()
}

// clearStale flushes the UDP conntrack entries that would keep sending a
// client to an endpoint that is gone, or to a reject now that the Service
// has endpoints again (as upstream's conntrack cleanup).
func (p *Proxier) clearStale(old, new *rulesAndPorts) {
	if p.cfg.Conntrack == nil || old == nil {
		return
	}
	newPorts := map[portName]servicePort{}
	if new != nil {
		for _, sp := range new.ports {
			newPorts[sp.name] = sp
		}
	}
	for _, op := range old.ports {
		if op.name.Protocol != corev1.ProtocolUDP {
			continue
		}
		np, still := newPorts[op.name]
		keep := map[endpoint]bool{}
		for _, e := range np.endpoints {
			keep[e] = true
		}
		for _, e := range op.endpoints {
			if keep[e] {
				continue
			}
			if err := p.cfg.Conntrack.ClearUDP(op.clusterIP, op.port, e.IP); err != nil {
				p.log.Warn("clearing conntrack", "service", op.name.String(), "endpoint", e.String(), "err", err)
			}
			if op.nodePort != 0 {
				_ = p.cfg.Conntrack.ClearUDP("", op.nodePort, e.IP)
			}
		}
		if still && len(op.endpoints) == 0 && len(np.endpoints) > 0 {
			if err := p.cfg.Conntrack.ClearUDP(op.clusterIP, op.port, ""); err != nil {
				p.log.Warn("clearing conntrack", "service", op.name.String(), "err", err)
			}
		}
	}
}

// sliceIndex indexes EndpointSlices by "<namespace>/<service name>".
const sliceIndex = "skiff-proxy-service"

func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
}

// informerLister reads the informers' caches.
type informerLister struct {
	svc    corelisters.ServiceLister
	slice  cache.Indexer
	synced []cache.InformerSynced
}

func (l *informerLister) service(key types.NamespacedName) (*corev1.Service, error) {
	svc, err := l.svc.Services(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return svc, err
}

func (l *informerLister) slices(key types.NamespacedName) ([]*discoveryv1.EndpointSlice, error) {
	objs, err := l.slice.ByIndex(sliceIndex, key.Namespace+"/"+key.Name)
	if err != nil {
		return nil, err
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

func (l *informerLister) all() []types.NamespacedName {
	list, _ := l.svc.List(labels.Everything())
	out := make([]types.NamespacedName, 0, len(list))
	for _, s := range list {
		out = append(out, types.NamespacedName{Namespace: s.Namespace, Name: s.Name})
	}
	return out
}

func (l *informerLister) hasSynced() bool {
	for _, f := range l.synced {
		if !f() {
			return false
		}
	}
	return true
}
