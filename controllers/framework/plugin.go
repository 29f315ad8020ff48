package framework

import (
	"context"
	"log/slog"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/record"
)

// Controller is a running reconcile loop. Run blocks until ctx ends (or the controller fails)
// and stops every goroutine it started before it returns.
type Controller interface {
	Run(ctx context.Context) error
}

// Plugin registers a controller by name. New must be quiet: it may wire informer handlers
// and build queues, but it starts nothing and calls nothing on the network; the manager calls
// it afresh each time this server gains leadership.
type Plugin struct {
	// Name as used in --controllers ("deployment", "scheduler", ...).
	Name string
	// EventSource is the component named in the events it records ("deployment-controller").
	EventSource string
	// DisabledByDefault leaves the plugin out of "*", as kube-controller-manager does for
	// some of its controllers.
	DisabledByDefault bool
	// New builds the controller from its dependencies.
	New func(Deps) (Controller, error)
}

// Deps is everything a controller constructor receives. Informers is shared by all the
// controllers of one leadership term, so a resource is watched once.
type Deps struct {
	Client    kubernetes.Interface
	Metadata  metadata.Interface // objects as PartialObjectMetadata; nil when the manager was given only a typed client
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder
	Logger    *slog.Logger
	Metrics   *ControllerMetrics // never nil
	Options   Options
}
