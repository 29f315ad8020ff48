package nodeagent

import (
	"context"
	"fmt"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff-dev/skiff/nodeagent/image/imagetest"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// testImage is skiff's test image, built once by TestMain when running as
// root (the only case where real containers run).
var testImage v1.Image

func TestMain(m *testing.M) {
	// libcontainer re-executes this test binary as each container's init.
	runtime.MaybeInit()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "nodeagent-image-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if testImage, err = imagetest.Build(context.Background(), dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// requireRoot skips a test that runs real containers, except in CI, where a
// skipped test would hide a failure.
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
