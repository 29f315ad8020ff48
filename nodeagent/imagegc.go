package nodeagent

import (
	"context"
	"time"

	"github.com/skiff-dev/skiff/nodeagent/image"
)

// runImageGC deletes unused images when the disk fills, as the kubelet's image manager
// does every 5 minutes: an image any container of this node (running or exited, not yet
// removed) was made from is in use.
func (a *Agent) runImageGC(ctx context.Context) error {
	if a.cfg.Images == nil {
		return nil // a hollow node has no images
	}
	t := time.NewTicker(a.cfg.ImageGCPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		list, err := a.cfg.Runtime.List(ctx)
		if err != nil {
			a.log.Warn("image GC: listing containers", "err", err)
			continue
		}
		inUse := map[string]bool{}
		for _, r := range list {
			if ref := r.Annotations[annoImage]; ref != "" {
				if key, err := image.Key(ref); err == nil {
					inUse[key] = true
				}
			}
		}
		removed, err := a.cfg.Images.GC(ctx, a.cfg.ImageGC, func(ref string) bool { return inUse[ref] })
		for _, ref := range removed {
			a.log.Info("image GC: deleted an unused image", "image", ref)
		}
		if err != nil {
			a.log.Warn("image GC", "err", err)
		}
	}
}
