package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/skiff-dev/skiff/nodeagent/image"
	"github.com/skiff-dev/skiff/nodeagent/image/imagetest"
)

// testBinary is the static test image program and testImg the image made
// of it, both built once in TestMain.
var (
	testBinary string
	testImg    v1.Image
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "imagetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testBinary, err = imagetest.BuildBinary(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if testImg, err = image.BuildTestImage(testBinary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// requireRoot skips a test that needs root (unpacking chowns files and makes
// whiteout device nodes), except in CI, where a skipped test hides a failure.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root: unpacking layers chowns files and creates device nodes (CI=true forbids skipping)")
	}
	t.Skip("needs root: unpacking layers chowns files and creates device nodes")
}

func testImage(t *testing.T) v1.Image {
	t.Helper()
	return testImg
}

func newStore(t *testing.T) *image.Store {
	t.Helper()
	s, err := image.NewStore(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serveRegistry starts an in-process registry over plain HTTP and returns
// its host:port.
func serveRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(nilLogger())))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func TestBuildTestImageIsReproducible(t *testing.T) {
	a := testImage(t)
	b, err := image.BuildTestImage(testBinary)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("digests differ: %s vs %s", da, db)
	}
	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/testimage" {
		t.Fatalf("entrypoint %v", got)
	}
}

func TestPullOverPlainHTTPUnpacksLayers(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	ref := serveRegistry(t) + "/skiff/testimage:latest"
	push(t, ref, testImage(t))

	s := newStore(t)
	got, err := s.Pull(ctx, ref, image.PullOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Ref != ref || len(got.DiffIDs) != 1 {
		t.Fatalf("pulled %+v", got)
	}
	rootfs, err := s.Rootfs(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(rootfs.LayerDirs) != 1 {
		t.Fatalf("layer dirs %v", rootfs.LayerDirs)
	}
	fi, err := os.Stat(filepath.Join(rootfs.LayerDirs[0], "testimage"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.Stat(testBinary)
	if fi.Mode().Perm() != 0o755 || fi.Size() != want.Size() {
		t.Fatalf("unpacked binary: mode %v size %d, want 0755 %d", fi.Mode(), fi.Size(), want.Size())
	}
	tmp, err := os.Stat(filepath.Join(rootfs.LayerDirs[0], "tmp"))
	if err != nil || tmp.Mode()&os.ModeSticky == 0 || tmp.Mode().Perm() != 0o777 {
		t.Fatalf("/tmp: %v, %v", tmp.Mode(), err)
	}
	if c := rootfs.Config; len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/testimage" || c.WorkingDir != "/" || len(c.Env) == 0 {
		t.Fatalf("config %+v", c)
	}

	// A second pull finds the layer in place and does not unpack it again.
	before, _ := os.Stat(rootfs.LayerDirs[0])
	if _, err := s.Pull(ctx, ref, image.PullOptions{Insecure: true}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(rootfs.LayerDirs[0])
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Fatal("layer was unpacked again")
	}
}

type file struct {
	name, body string
	typ        byte
}

func layerOf(t *testing.T, files ...file) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Typeflag: f.typ, ModTime: time.Unix(1, 0)}
		switch f.typ {
		case tar.TypeDir:
			hdr.Mode = 0o755
		case tar.TypeSymlink, tar.TypeLink:
			hdr.Linkname = f.body
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			io.WriteString(tw, f.body)
		}
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestWhiteoutsBecomeOverlayWhiteouts(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	base := layerOf(t,
		file{name: "a/", typ: tar.TypeDir},
		file{name: "a/keep", body: "keep"},
		file{name: "a/gone", body: "gone"},
		file{name: "b/", typ: tar.TypeDir},
		file{name: "b/old", body: "old"},
	)
	top := layerOf(t,
		file{name: "a/.wh.gone"},
		file{name: "b/", typ: tar.TypeDir},
		file{name: "b/.wh..wh..opq"},
		file{name: "b/new", body: "new"},
	)
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		t.Fatal(err)
	}
	ref := serveRegistry(t) + "/skiff/whiteouts:v1"
	push(t, ref, img)
	s := newStore(t)
	if _, err := s.Pull(ctx, ref, image.PullOptions{Insecure: true}); err != nil {
		t.Fatal(err)
	}
	rootfs, err := s.Rootfs(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	lower, upper := rootfs.LayerDirs[0], rootfs.LayerDirs[1]

	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "a/gone"), &st); err != nil {
		t.Fatalf("whiteout for a/gone: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("a/gone is mode %o rdev %d, want a 0/0 char device", st.Mode, st.Rdev)
	}
	if _, err := os.Lstat(filepath.Join(upper, "a/.wh.gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OCI whiteout file left behind: %v", err)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(upper, "b"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Fatalf("b not opaque: %q, %v", buf[:n], err)
	}

	// The proof: stacked by overlayfs, the deletions take effect.
	mnt := t.TempDir()
	opts := "lowerdir=" + upper + ":" + lower
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	for path, exists := range map[string]bool{"a/keep": true, "a/gone": false, "b/old": false, "b/new": true} {
		_, err := os.Lstat(filepath.Join(mnt, path))
		if exists != (err == nil) {
			t.Errorf("%s: exists=%v, err=%v", path, exists, err)
		}
	}
}

func TestUnpackStaysInsideLayerDir(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	outside := t.TempDir()
	evil := layerOf(t,
		file{name: "../../../../../../" + outside + "/dotdot", body: "x"},
		file{name: "link", body: outside, typ: tar.TypeSymlink},
		file{name: "link/through-symlink", body: "x"},
		file{name: "hard", body: "/../../etc/passwd", typ: tar.TypeLink},
	)
	img, err := mutate.AppendLayers(empty.Image, evil)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	_, err = s.Add(ctx, "skiff.local/evil:latest", img)
	// The hard link names a file the layer does not have, so the add fails;
	// what matters is that nothing was written outside.
	if err == nil {
		t.Log("add succeeded")
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("wrote outside the layer dir: %v", entries)
	}
}

func TestImportDockerTarball(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	tag, err := name.NewTag(image.TestImageRef)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(path, tag, testImage(t)); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	imported, err := s.Import(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(imported) != 1 || imported[0].Ref != image.TestImageRef {
		t.Fatalf("imported %+v", imported)
	}
	rootfs, err := s.Rootfs(ctx, image.TestImageRef)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs.LayerDirs[0], "testimage")); err != nil {
		t.Fatal(err)
	}
}

func TestImportOCILayout(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	const ref = "skiff.local/testimage:oci"
	if err := p.AppendImage(testImage(t), layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	imported, err := s.Import(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(imported) != 1 || imported[0].Ref != ref {
		t.Fatalf("imported %+v", imported)
	}
}

func TestRemoveKeepsSharedLayers(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	base := testImage(t)
	extended, err := mutate.AppendLayers(base, layerOf(t, file{name: "extra", body: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	if _, err := s.Add(ctx, "skiff.local/base:1", base); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "skiff.local/extended:1", extended); err != nil {
		t.Fatal(err)
	}
	ext, err := s.Rootfs(ctx, "skiff.local/extended:1")
	if err != nil {
		t.Fatal(err)
	}
	baseRootfs, _ := s.Rootfs(ctx, "skiff.local/base:1")
	if ext.LayerDirs[0] != baseRootfs.LayerDirs[0] {
		t.Fatalf("base layer not shared: %s vs %s", ext.LayerDirs[0], baseRootfs.LayerDirs[0])
	}
	if list, _ := s.List(ctx); len(list) != 2 {
		t.Fatalf("list: %+v", list)
	}

	if err := s.Remove(ctx, "skiff.local/extended:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ext.LayerDirs[1]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unshared layer kept: %v", err)
	}
	if _, err := os.Stat(ext.LayerDirs[0]); err != nil {
		t.Fatalf("shared layer deleted: %v", err)
	}
	if _, err := s.Get(ctx, "skiff.local/extended:1"); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("get removed image: %v", err)
	}
	if err := s.Remove(ctx, "skiff.local/extended:1"); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}

	if err := s.Remove(ctx, "skiff.local/base:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ext.LayerDirs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("last image removed but its layer kept: %v", err)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("list after removing all: %+v", list)
	}
}

// nilLogger keeps the registry's request log out of test output.
func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func TestConcurrentAddsShareOneUnpack(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := newStore(t)
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := s.Add(ctx, fmt.Sprintf("skiff.local/copy%d:latest", i), testImage(t))
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 4 {
		t.Fatalf("list: %d images, %v", len(list), err)
	}
	root, _ := s.Rootfs(ctx, "skiff.local/copy0:latest")
	layers, _ := os.ReadDir(filepath.Dir(root.LayerDirs[0]))
	if len(layers) != 1 {
		t.Fatalf("%d layer dirs for one shared layer", len(layers))
	}
}
