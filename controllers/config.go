package controllers

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// ManagerConfig configures a Manager. Either RestConfig or Client is required.
type ManagerConfig struct {
	// RestConfig reaches the apiserver; the manager raises its client-side rate limits
	// (client-go's default of 5 QPS would throttle the scheduler) unless set.
	RestConfig *rest.Config
	// Client and Metadata, when set, are used instead of clients built from RestConfig
	// (tests use client-go's fake clientset). Controllers that need Metadata (garbage
	// collector, namespace) fail to start without it.
	Client   kubernetes.Interface
	Metadata metadata.Interface

	// Enabled is the --controllers list: "*", "name", "-name". Empty means "*".
	Enabled []string
	// Plugins replaces the built-in plugin list (nil: Builtins()).
	Plugins []framework.Plugin

	Logger  *slog.Logger
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	Options framework.Options
}
