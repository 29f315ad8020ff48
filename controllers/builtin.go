package controllers

import (
	"github.com/skiff-dev/skiff/controllers/daemonset"
	"github.com/skiff-dev/skiff/controllers/deployment"
	"github.com/skiff-dev/skiff/controllers/endpoints"
	"github.com/skiff-dev/skiff/controllers/framework"
	"github.com/skiff-dev/skiff/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/controllers/job"
	"github.com/skiff-dev/skiff/controllers/namespace"
	"github.com/skiff-dev/skiff/controllers/nodeipam"
	"github.com/skiff-dev/skiff/controllers/nodelifecycle"
	"github.com/skiff-dev/skiff/controllers/podgc"
	"github.com/skiff-dev/skiff/controllers/replicaset"
	"github.com/skiff-dev/skiff/controllers/scheduler"
	"github.com/skiff-dev/skiff/controllers/serviceaccount"
)

// Builtins is the list of built-in controller plugins, in start order. It is a function of
// nothing: the set of plugins is fixed at build time.
func Builtins() []framework.Plugin {
	return []framework.Plugin{
		scheduler.Plugin,
		replicaset.Plugin,
		deployment.Plugin,
		daemonset.Plugin,
		job.Plugin,
		nodelifecycle.Plugin,
		podgc.Plugin,
		nodeipam.Plugin,
		garbagecollector.Plugin,
		endpoints.SlicePlugin,
		endpoints.EndpointsPlugin,
		namespace.Plugin,
		serviceaccount.Plugin,
		serviceaccount.RootCAPlugin,
	}
}
