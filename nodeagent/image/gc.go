package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// GCPolicy is the kubelet's image garbage collection policy: when the disk holding the
// store is at least HighPercent full, unused images are deleted, least recently used
// first, until it is at most LowPercent full. Images used more recently than MinAge stay.
type GCPolicy struct {
	HighPercent, LowPercent int           // kubelet: 85 and 80
	MinAge                  time.Duration // kubelet: 2m
}

// DiskUsagePercent is how full the filesystem holding the store is.
func (s *Store) DiskUsagePercent() (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", s.root, err)
	}
	if st.Blocks == 0 {
		return 0, nil
	}
	return 100 * float64(st.Blocks-st.Bavail) / float64(st.Blocks), nil
}

// touch records that ref was just used (its record's modification time).
func (s *Store) touch(key string) {
	now := time.Now()
	_ = os.Chtimes(s.recordPath(key), now, now)
}

// lastUsed is when ref was last added or used to make a container.
func (s *Store) lastUsed(key string) time.Time {
	fi, err := os.Stat(s.recordPath(key))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// GC applies the policy. inUse reports whether a container (running or not) still stacks
// on an image, by its stored reference; those are never deleted. It returns the references
// it deleted.
func (s *Store) GC(ctx context.Context, p GCPolicy, inUse func(ref string) bool) ([]string, error) {
	used, err := s.DiskUsagePercent()
	if err != nil || used < float64(p.HighPercent) {
		return nil, err
	}
	images, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(images, func(i, j int) bool { return s.lastUsed(images[i].Ref).Before(s.lastUsed(images[j].Ref)) })
	var removed []string
	for _, img := range images {
		if used <= float64(p.LowPercent) {
			break
		}
		if inUse(img.Ref) || time.Since(s.lastUsed(img.Ref)) < p.MinAge {
			continue
		}
		if err := s.Remove(ctx, img.Ref); err != nil && !errors.Is(err, ErrNotFound) {
			return removed, err
		}
		removed = append(removed, img.Ref)
		if used, err = s.DiskUsagePercent(); err != nil {
			return removed, err
		}
	}
	if used > float64(p.LowPercent) {
		return removed, fmt.Errorf("image GC: the disk is still %.0f%% full (want at most %d%%) with every unused image old enough deleted", used, p.LowPercent)
	}
	return removed, nil
}

// Key is the reference an image is stored under (e.g. "busybox" is
// "index.docker.io/library/busybox:latest").
func Key(ref string) (string, error) { return normalize(ref) }
