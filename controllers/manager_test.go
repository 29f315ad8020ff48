package controllers

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/controllers/framework"
)

type blockingController struct{ running *atomic.Int32 }

func (b blockingController) Run(ctx context.Context) error {
	b.running.Add(1)
	defer b.running.Add(-1)
	<-ctx.Done()
	return nil
}

func TestManagerRunsEachTermWithFreshControllers(t *testing.T) {
	var built, running atomic.Int32
	plugin := framework.Plugin{Name: "probe", New: func(d framework.Deps) (framework.Controller, error) {
		built.Add(1)
		d.Informers.Core().V1().Pods().Informer() // a controller asks for its informers here
		return blockingController{&running}, nil
	}}
	m, err := NewManager(ManagerConfig{Client: fake.NewClientset(), Plugins: []framework.Plugin{plugin},
		Logger: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for term := 1; term <= 2; term++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		deadline := time.Now().Add(5 * time.Second)
		for running.Load() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("term %d: controller not running", term)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := m.Run(ctx); err == nil {
			t.Fatal("a second concurrent Run succeeded")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("term %d: Run = %v", term, err)
		}
		if running.Load() != 0 {
			t.Fatalf("term %d: controller still running after Run returned", term)
		}
	}
	if built.Load() != 2 {
		t.Fatalf("constructor called %d times, want once per term", built.Load())
	}
}

func TestManagerReportsConstructorErrors(t *testing.T) {
	bad := framework.Plugin{Name: "bad", New: func(framework.Deps) (framework.Controller, error) { return nil, errors.New("boom") }}
	m, err := NewManager(ManagerConfig{Client: fake.NewClientset(), Plugins: []framework.Plugin{bad}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx); err == nil {
		t.Fatal("Run hid the constructor error")
	}
}

func TestNewManagerRejectsBadConfig(t *testing.T) {
	if _, err := NewManager(ManagerConfig{}); err == nil {
		t.Error("no client accepted")
	}
	if _, err := NewManager(ManagerConfig{Client: fake.NewClientset(), Enabled: []string{"nope"}}); err == nil {
		t.Error("unknown controller accepted")
	}
	if _, err := NewManager(ManagerConfig{Client: fake.NewClientset(), Options: framework.Options{ClusterCIDR: "x"}}); err == nil {
		t.Error("bad CIDR accepted")
	}
	m, err := NewManager(ManagerConfig{Client: fake.NewClientset(), Enabled: []string{"*", "-scheduler"}})
	if err != nil || len(m.Enabled()) != len(Builtins())-1 {
		t.Errorf("enabled = %v, %v", m.Enabled(), err)
	}
}
