// Package image pulls, imports and keeps OCI images for the node agent. Each
// layer is unpacked once, by its uncompressed digest, into a directory of its
// own with OCI whiteouts turned into overlayfs whiteouts, so that a container's
// root filesystem is an overlay whose lower dirs are those directories.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"
)

// ErrNotFound is returned for an image reference the store does not hold.
var ErrNotFound = errors.New("image not found")

// Config is the part of an image's configuration that decides how its
// containers run.
type Config struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Image describes a stored image.
type Image struct {
	// Ref is the fully qualified reference it is stored under,
	// e.g. "index.docker.io/library/busybox:latest".
	Ref string `json:"ref"`
	// Digest is the manifest digest, e.g. "sha256:...".
	Digest string `json:"digest"`
	// DiffIDs are the uncompressed layer digests, base layer first.
	DiffIDs []string `json:"diffIDs"`
	Config  Config   `json:"config"`
}

// Rootfs is what a runtime needs to build a container's root filesystem.
type Rootfs struct {
	Image
	// LayerDirs are the unpacked layer directories, base layer first. They
	// are shared between images and must never be written to.
	LayerDirs []string
}

// Store keeps images under a root directory:
//
//	<root>/images/<sha256 of ref>.json  one record per reference
//	<root>/layers/<diffID hex>/         one unpacked layer, shared by all images
//	<root>/tmp/                         unpacks in progress, renamed into layers/
type Store struct {
	root string

	// gc is held for reading while an image is being added and for writing
	// while unreferenced layers are deleted, so that a layer another image
	// is about to reference is never collected under its feet.
	gc sync.RWMutex
	// unpacks makes concurrent adds of images sharing a layer unpack it once.
	unpacks singleflight.Group
}

// NewStore opens (creating if needed) a store under root. Leftovers of unpacks
// interrupted by a crash are deleted.
func NewStore(root string) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("image store root: %w", err)
	}
	s := &Store{root: root}
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("clean image store tmp dir: %w", err)
	}
	for _, dir := range []string{s.imagesDir(), s.layersDir(), s.tmpDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create image store: %w", err)
		}
	}
	return s, nil
}

func (s *Store) imagesDir() string { return filepath.Join(s.root, "images") }
func (s *Store) layersDir() string { return filepath.Join(s.root, "layers") }
func (s *Store) tmpDir() string    { return filepath.Join(s.root, "tmp") }

func (s *Store) layerDir(diffID string) string {
	return filepath.Join(s.layersDir(), strings.TrimPrefix(diffID, "sha256:"))
}

func (s *Store) recordPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.imagesDir(), hex.EncodeToString(sum[:])+".json")
}

// normalize turns a user's reference ("busybox") into the fully qualified
// form records are keyed by ("index.docker.io/library/busybox:latest").
func normalize(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	return r.Name(), nil
}

// Add stores img under ref, unpacking the layers the store does not have yet.
// Pull and Import end here; callers holding a v1.Image can use it directly.
func (s *Store) Add(ctx context.Context, ref string, img v1.Image) (Image, error) {
	key, err := normalize(ref)
	if err != nil {
		return Image{}, err
	}
	s.gc.RLock()
	defer s.gc.RUnlock()

	digest, err := img.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("image %s: digest: %w", key, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("image %s: config: %w", key, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("image %s: layers: %w", key, err)
	}
	rec := Image{
		Ref:    key,
		Digest: digest.String(),
		Config: Config{
			Entrypoint: cf.Config.Entrypoint,
			Cmd:        cf.Config.Cmd,
			Env:        cf.Config.Env,
			WorkingDir: cf.Config.WorkingDir,
			User:       cf.Config.User,
		},
	}
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return Image{}, fmt.Errorf("image %s: layer diffID: %w", key, err)
		}
		if err := s.ensureLayer(ctx, diffID, l); err != nil {
			return Image{}, fmt.Errorf("image %s: %w", key, err)
		}
		rec.DiffIDs = append(rec.DiffIDs, diffID.String())
	}
	if err := writeJSONAtomic(s.recordPath(key), rec); err != nil {
		return Image{}, fmt.Errorf("image %s: write record: %w", key, err)
	}
	return rec, nil
}

// ensureLayer unpacks l into its directory unless it is already there.
func (s *Store) ensureLayer(ctx context.Context, diffID v1.Hash, l v1.Layer) error {
	dir := s.layerDir(diffID.String())
	_, err, _ := s.unpacks.Do(diffID.String(), func() (any, error) {
		if _, err := os.Stat(dir); err == nil {
			return nil, nil
		}
		tmp, err := os.MkdirTemp(s.tmpDir(), "layer-")
		if err != nil {
			return nil, err
		}
		if err := unpackLayer(ctx, l, diffID, tmp); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("unpack layer %s: %w", diffID, err)
		}
		// The rename publishes the layer whole: a reader sees either no
		// directory or a complete one.
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("publish layer %s: %w", diffID, err)
		}
		return nil, nil
	})
	return err
}

// Get returns the record stored under ref.
func (s *Store) Get(ctx context.Context, ref string) (Image, error) {
	key, err := normalize(ref)
	if err != nil {
		return Image{}, err
	}
	rec, err := s.readRecord(s.recordPath(key))
	if errors.Is(err, ErrNotFound) {
		return Image{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return rec, err
}

// Rootfs returns the unpacked layer directories and the config of ref.
func (s *Store) Rootfs(ctx context.Context, ref string) (Rootfs, error) {
	rec, err := s.Get(ctx, ref)
	if err != nil {
		return Rootfs{}, err
	}
	s.touch(rec.Ref) // a container is made of it: it is in use, for image GC
	out := Rootfs{Image: rec}
	for _, d := range rec.DiffIDs {
		out.LayerDirs = append(out.LayerDirs, s.layerDir(d))
	}
	return out, nil
}

// List returns every stored image, sorted by reference.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	entries, err := os.ReadDir(s.imagesDir())
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []Image
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		rec, err := s.readRecord(filepath.Join(s.imagesDir(), e.Name()))
		if errors.Is(err, ErrNotFound) {
			continue // removed while we listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// Remove forgets ref and deletes the layers no other image uses. The caller
// must not remove an image that running containers still stack on.
func (s *Store) Remove(ctx context.Context, ref string) error {
	key, err := normalize(ref)
	if err != nil {
		return err
	}
	s.gc.Lock()
	defer s.gc.Unlock()
	if err := os.Remove(s.recordPath(key)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("remove image %s: %w", key, err)
	}
	return s.collectLayers(ctx)
}

// collectLayers deletes layer directories no image record references.
// Called with s.gc held for writing.
func (s *Store) collectLayers(ctx context.Context) error {
	images, err := s.List(ctx)
	if err != nil {
		return err
	}
	used := make(map[string]bool)
	for _, img := range images {
		for _, d := range img.DiffIDs {
			used[filepath.Base(s.layerDir(d))] = true
		}
	}
	entries, err := os.ReadDir(s.layersDir())
	if err != nil {
		return fmt.Errorf("collect layers: %w", err)
	}
	for _, e := range entries {
		if used[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.layersDir(), e.Name())); err != nil {
			return fmt.Errorf("delete layer %s: %w", e.Name(), err)
		}
	}
	return nil
}

func (s *Store) readRecord(path string) (Image, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Image{}, ErrNotFound
	}
	if err != nil {
		return Image{}, fmt.Errorf("read image record: %w", err)
	}
	var rec Image
	if err := json.Unmarshal(data, &rec); err != nil {
		return Image{}, fmt.Errorf("decode image record %s: %w", path, err)
	}
	return rec, nil
}

// writeJSONAtomic writes v to path through a rename, so a crash leaves
// either the old record or the new one.
func writeJSONAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
