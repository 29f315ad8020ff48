package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/internal/trim"
)

// Manager runs the enabled controllers for as long as the context given to Run lasts.
type Manager struct {
	client  kubernetes.Interface
	meta    metadata.Interface
	plugins []framework.Plugin
	opts    framework.Options
	metrics *framework.Metrics
	log     *slog.Logger
	running atomic.Bool
}

// NewManager checks the configuration and builds the clients; it starts nothing.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	m := &Manager{client: cfg.Client, meta: cfg.Metadata, log: cfg.Logger}
	if m.log == nil {
		m.log = slog.Default()
	}
	if cfg.RestConfig != nil {
		rc := rest.CopyConfig(cfg.RestConfig)
		if rc.QPS == 0 {
			rc.QPS, rc.Burst = 1000, 2000
		}
		if rc.UserAgent == "" {
			rc.UserAgent = "skiff-controller-manager"
		}
		// Protobuf, as kube-controller-manager's --kube-api-content-type default: a new
		// term's informers list every pod and node, and JSON decoding was most of that.
		// The metadata client sets its own (protobuf first too).
		if rc.ContentType == "" {
			rc.ContentType = "application/vnd.kubernetes.protobuf"
			rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		}
		var err error
		if m.client == nil {
			if m.client, err = kubernetes.NewForConfig(rc); err != nil {
				return nil, fmt.Errorf("controllers: client: %w", err)
			}
		}
		if m.meta == nil {
			if m.meta, err = metadata.NewForConfig(rc); err != nil {
				return nil, fmt.Errorf("controllers: metadata client: %w", err)
			}
		}
	}
	if m.client == nil {
		return nil, errors.New("controllers: RestConfig or Client is required")
	}
	if err := cfg.Options.Validate(); err != nil {
		return nil, err
	}
	m.opts = cfg.Options.Defaulted()
	if len(m.opts.RootCA) == 0 && cfg.RestConfig != nil {
		m.opts.RootCA = cfg.RestConfig.TLSClientConfig.CAData
	}
	all := cfg.Plugins
	if all == nil {
		all = Builtins()
	}
	seen := map[string]bool{}
	for _, p := range all {
		if p.Name == "" || p.New == nil || seen[p.Name] {
			return nil, fmt.Errorf("controllers: plugin %q: empty, duplicate or without constructor", p.Name)
		}
		seen[p.Name] = true
	}
	var err error
	if m.plugins, err = resolveEnabled(all, cfg.Enabled); err != nil {
		return nil, fmt.Errorf("controllers: %w", err)
	}
	if m.metrics, err = framework.NewMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	return m, nil
}

// Enabled names the controllers Run starts.
func (m *Manager) Enabled() []string { return names(m.plugins) }

// Run builds fresh informers, an event recorder and every enabled controller, runs them
// until ctx ends, and returns once all of them have stopped. Call it each time this server
// becomes leader; nothing is cached between calls. It returns nil when ctx ended, or the
// start-up errors of the controllers that could not run.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("controllers: manager already running")
	}
	defer m.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	factory := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithTransform(trim.Object))
	// The broadcaster outlives ctx: controllers still finishing a reconcile when leadership
	// ends record their events into it, and the deferred Shutdown flushes it after they
	// have all returned (stopped with ctx, it refused them: "broadcaster already stopped").
	events := record.NewBroadcaster(record.WithContext(context.WithoutCancel(ctx)))
	defer events.Shutdown()
	events.StartRecordingToSink(newConcurrentSink(&typedcorev1.EventSinkImpl{Interface: m.client.CoreV1().Events("")}, eventWriters, m.log))

	var errs []error
	type started struct {
		name string
		c    framework.Controller
	}
	var ctrls []started
	for _, p := range m.plugins {
		source := p.EventSource
		if source == "" {
			source = p.Name + "-controller"
		}
		c, err := p.New(framework.Deps{
			Client:    m.client,
			Metadata:  m.meta,
			Informers: factory,
			Recorder:  events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: source}),
			Logger:    m.log.With("controller", p.Name),
			Metrics:   m.metrics.For(p.Name),
			Options:   m.opts,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("controller %s: %w", p.Name, err))
			m.log.Error("controller not started", "controller", p.Name, "err", err)
			continue
		}
		ctrls = append(ctrls, started{p.Name, c})
	}
	factory.Start(ctx.Done())
	// Shutdown waits for the informers, which stop once cancel (called below) closes ctx.
	defer factory.Shutdown()

	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range ctrls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.log.Info("controller started", "controller", s.name)
			if err := s.c.Run(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("controller stopped", "controller", s.name, "err", err)
				mu.Lock()
				errs = append(errs, fmt.Errorf("controller %s: %w", s.name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cancel()
	return errors.Join(errs...)
}
