package image_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"golang.org/x/sys/unix"

	"github.com/skiff-dev/skiff/nodeagent/image"
)

// TestGCFreesTheDiskLeastRecentlyUsedFirst fills a 64 MiB tmpfs with images of random
// layers; over the high threshold GC deletes the least recently used unused images until
// the disk is under the low one, and keeps an image in use and one used recently.
func TestGCFreesTheDiskLeastRecentlyUsedFirst(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	s, err := image.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var refs []string
	for i := 0; i < 6; i++ { // 6 x 9 MiB of 64 MiB: about 85%
		img, err := random.Image(9<<20, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref := fmt.Sprintf("example.com/img%d:v1", i)
		if _, err := s.Add(ctx, ref, img); err != nil {
			t.Fatal(err)
		}
		key, _ := image.Key(ref)
		refs = append(refs, key)
		old := time.Now().Add(-time.Duration(10-i) * time.Hour) // img0 the least recently used
		_ = os.Chtimes(recordFile(t, s, ref), old, old)
	}
	used, err := s.DiskUsagePercent()
	if err != nil || used < 80 {
		t.Fatalf("setup: disk %.0f%% full (%v)", used, err)
	}
	if _, err := s.Rootfs(ctx, refs[1]); err != nil { // img1 used just now
		t.Fatal(err)
	}
	inUse := func(ref string) bool { return ref == refs[0] } // img0 has a container
	removed, err := s.GC(ctx, image.GCPolicy{HighPercent: int(used) - 1, LowPercent: 60, MinAge: time.Minute}, inUse)
	if err != nil {
		t.Fatalf("gc: %v (removed %v)", err, removed)
	}
	if slices.Contains(removed, refs[0]) || slices.Contains(removed, refs[1]) {
		t.Fatalf("removed an image in use or used just now: %v", removed)
	}
	if len(removed) == 0 || removed[0] != refs[2] {
		t.Fatalf("want the least recently used unused image (%s) first, removed %v", refs[2], removed)
	}
	if after, _ := s.DiskUsagePercent(); after > 60 {
		t.Fatalf("disk still %.0f%% full after GC", after)
	}
	// Under the high threshold nothing goes.
	if removed, err := s.GC(ctx, image.GCPolicy{HighPercent: 99, LowPercent: 10}, inUse); err != nil || len(removed) != 0 {
		t.Fatalf("below the high threshold: removed %v, %v", removed, err)
	}
}

// recordFile finds ref's record by its modification: the store keeps one JSON per image.
func recordFile(t *testing.T, s *image.Store, ref string) string {
	t.Helper()
	return image.RecordPathForTest(s, ref)
}
