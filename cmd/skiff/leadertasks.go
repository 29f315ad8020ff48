package main

import (
	"context"
	"log/slog"

	"github.com/skiff-dev/skiff/cluster"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/framework"
)

// controllersFlag is --controllers of `skiff server`; controllerOptions holds its
// controller timing flags (zero: the Kubernetes defaults).
var (
	controllersFlag   []string
	controllerOptions framework.Options
)

// leaderTasks is the work a server runs only while it leads: the controller manager (the
// scheduler is one of its controllers). Each term gets a fresh manager, so nothing cached
// in a previous term survives into the next.
func leaderTasks(log *slog.Logger) []func(context.Context, cluster.APIAccess) error {
	return []func(context.Context, cluster.APIAccess) error{
		func(ctx context.Context, api cluster.APIAccess) error {
			m, err := controllers.NewManager(controllers.ManagerConfig{
				RestConfig: cluster.RestConfigFor(api),
				Enabled:    controllersFlag,
				Logger:     log.With("component", "controllers"),
				Options:    controllerOptions,
			})
			if err != nil {
				return err
			}
			return m.Run(ctx)
		},
	}
}
