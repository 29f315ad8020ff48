package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestImageRef names the image built by BuildTestImage.
const TestImageRef = "skiff.local/testimage:latest"

// DefaultPath is the PATH a container gets when its image sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BuildTestImage makes the single-layer image TestImageRef from the static
// binary built from ./testimage: /testimage is its entrypoint and, with no
// arguments, it serves HTTP on :8080. The same binary gives the same digest.
func BuildTestImage(binaryPath string) (v1.Image, error) {
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, fmt.Errorf("read test image binary: %w", err)
	}
	layerTar, err := tarOf(
		tarEntry{name: "testimage", mode: 0o755, body: bin},
		tarEntry{name: "tmp/", mode: 0o1777 | int64(os.ModeDir)},
		tarEntry{name: "etc/", mode: 0o755},
	)
	if err != nil {
		return nil, err
	}
	// Compress once here: the layer would otherwise gzip the whole binary
	// again each time its digest or bytes are asked for.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(layerTar); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("test image layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, fmt.Errorf("test image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config.Entrypoint = []string{"/testimage"}
	cf.Config.Env = []string{DefaultPath}
	cf.Config.WorkingDir = "/"
	cf.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	return mutate.ConfigFile(img, cf)
}

type tarEntry struct {
	name string
	mode int64
	body []byte
}

// tarOf writes entries with fixed owners and times so the bytes, and so the
// layer digest, depend only on the content.
func tarOf(entries ...tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode & 0o7777,
			ModTime: time.Unix(0, 0),
			Format:  tar.FormatPAX,
		}
		if e.name[len(e.name)-1] == '/' {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
