package main

import (
	"context"

	"github.com/skiff-dev/skiff/cluster"
)

// controllersFlag is --controllers of `skiff server`.
var controllersFlag []string

// leaderTasks is the work a server runs only while it leads. The controller manager plugs
// in here.
func leaderTasks() []func(context.Context, cluster.APIAccess) error {
	return nil
}
