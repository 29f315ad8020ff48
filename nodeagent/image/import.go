package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// refNameAnnotation names an image inside an OCI layout's index.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Import stores the images of an archive: a `docker save` tarball, an OCI
// image layout directory, or an OCI layout packed as a tar. Every tagged
// image in it is stored under each of its tags.
func (s *Store) Import(ctx context.Context, path string) ([]Image, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if fi.IsDir() {
		return s.importLayout(ctx, path)
	}
	hasDockerManifest, hasOCILayout, err := scanArchive(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	switch {
	case hasDockerManifest:
		// Docker 25+ writes both; manifest.json carries the repo tags.
		return s.importDockerTarball(ctx, path)
	case hasOCILayout:
		dir, err := os.MkdirTemp(s.tmpDir(), "import-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := untarPlain(path, dir); err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		return s.importLayout(ctx, dir)
	default:
		return nil, fmt.Errorf("import %s: neither manifest.json nor oci-layout in archive", path)
	}
}

func (s *Store) importDockerTarball(ctx context.Context, path string) ([]Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	manifest, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	var out []Image
	for _, desc := range manifest {
		if len(desc.RepoTags) == 0 {
			return out, fmt.Errorf("import %s: image %s has no tag to store it under", path, desc.Config)
		}
		for _, t := range desc.RepoTags {
			tag, err := name.NewTag(t)
			if err != nil {
				return out, fmt.Errorf("import %s: tag %q: %w", path, t, err)
			}
			img, err := tarball.Image(opener, &tag)
			if err != nil {
				return out, fmt.Errorf("import %s: %s: %w", path, t, err)
			}
			rec, err := s.Add(ctx, tag.Name(), img)
			if err != nil {
				return out, err
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

func (s *Store) importLayout(ctx context.Context, dir string) ([]Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	index, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	im, err := index.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	var out []Image
	for _, desc := range im.Manifests {
		ref := desc.Annotations[refNameAnnotation]
		if ref == "" {
			continue // an untagged blob set: nothing to name it by
		}
		img, err := layoutImage(index, desc)
		if err != nil {
			return out, fmt.Errorf("import %s: %s: %w", dir, ref, err)
		}
		rec, err := s.Add(ctx, ref, img)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("import %s: no image named by %s", dir, refNameAnnotation)
	}
	return out, nil
}

// layoutImage returns the image desc names, choosing this machine's platform
// when desc is itself an index.
func layoutImage(index v1.ImageIndex, desc v1.Descriptor) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return index.Image(desc.Digest)
	}
	child, err := index.ImageIndex(desc.Digest)
	if err != nil {
		return nil, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	want := hostPlatform()
	for _, d := range cm.Manifests {
		if d.Platform == nil || d.Platform.Satisfies(want) {
			return child.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image for platform %s", want)
}

// scanArchive reports which of the two archive formats path looks like.
func scanArchive(path string) (dockerManifest, ociLayout bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dockerManifest, ociLayout, nil
		}
		if err != nil {
			return false, false, fmt.Errorf("read archive: %w", err)
		}
		switch cleanEntryPath(hdr.Name) {
		case "manifest.json":
			dockerManifest = true
		case "oci-layout":
			ociLayout = true
		}
	}
}

// untarPlain extracts an archive of regular files and directories, which is
// all an OCI layout holds.
func untarPlain(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		rel := cleanEntryPath(hdr.Name)
		if rel == "" {
			continue
		}
		target := filepath.Join(dir, rel)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected entry %q of type %q in OCI layout archive", hdr.Name, hdr.Typeflag)
		}
	}
}

func hostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}
