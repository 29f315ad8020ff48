// Package imagetest builds skiff's test image for the tests of packages that
// need a real image: the static binary from ./testimage, compiled by the Go
// toolchain that runs the tests, and the image made from it.
package imagetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff-dev/skiff/nodeagent/image"
)

// Package is the import path of the test image's program.
const Package = "github.com/skiff-dev/skiff/testimage"

// BuildBinary compiles the test image's program, statically, into dir and
// returns its path. Callers own dir (a TestMain typically builds once and
// removes it after m.Run).
func BuildBinary(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "testimage")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, Package)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", Package, err, out)
	}
	return bin, nil
}

// Build compiles the binary into dir and returns the image made from it.
func Build(ctx context.Context, dir string) (v1.Image, error) {
	bin, err := BuildBinary(ctx, dir)
	if err != nil {
		return nil, err
	}
	return image.BuildTestImage(bin)
}
