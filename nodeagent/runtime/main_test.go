package runtime_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/skiff-dev/skiff/nodeagent/image"
	"github.com/skiff-dev/skiff/nodeagent/image/imagetest"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// testLayers are the unpacked layers of the test image, prepared once by
// TestMain when running as root.
var testLayers []string

func TestMain(m *testing.M) {
	// libcontainer re-executes this test binary as each container's init.
	runtime.MaybeInit()
	if helper := os.Getenv(helperEnv); helper != "" {
		os.Exit(runHelper(helper))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Geteuid() == 0 {
		// Kept apart from the runtime roots the tests create, and from the
		// test binary's directory (see Config.Root).
		dir, err := os.MkdirTemp("", "runtime-image-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if testLayers, err = prepareImage(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

func prepareImage(dir string) ([]string, error) {
	ctx := context.Background()
	img, err := imagetest.Build(ctx, dir)
	if err != nil {
		return nil, err
	}
	store, err := image.NewStore(dir + "/store")
	if err != nil {
		return nil, err
	}
	if _, err := store.Add(ctx, image.TestImageRef, img); err != nil {
		return nil, err
	}
	rootfs, err := store.Rootfs(ctx, image.TestImageRef)
	if err != nil {
		return nil, err
	}
	return rootfs.LayerDirs, nil
}

// requireRoot skips a test that needs root (namespaces, cgroups, mounts),
// except in CI, where a skipped test would hide a failure.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root: containers need namespaces, cgroups and mounts (CI=true forbids skipping)")
	}
	t.Skip("needs root: containers need namespaces, cgroups and mounts")
}
