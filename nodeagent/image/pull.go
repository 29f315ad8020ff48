package image

import (
	"context"
	"fmt"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PullOptions tune Pull. The zero value pulls over HTTPS with the
// credentials of the local Docker config, for this machine's platform.
type PullOptions struct {
	// Insecure allows plain HTTP (and unverified TLS) to the registry, for
	// local and test registries.
	Insecure bool
	// Keychain supplies credentials; nil means authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport, if set, carries the registry traffic.
	Transport http.RoundTripper
	// Platform picks from a multi-platform index; nil means linux/GOARCH.
	Platform *v1.Platform
}

// Pull fetches ref from its registry and stores it under ref.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (Image, error) {
	var nameOpts []name.Option
	if opts.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return Image{}, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	keychain := opts.Keychain
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if opts.Platform != nil {
		platform = *opts.Platform
	}
	remoteOpts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keychain),
		remote.WithPlatform(platform),
	}
	if opts.Transport != nil {
		remoteOpts = append(remoteOpts, remote.WithTransport(opts.Transport))
	}
	img, err := remote.Image(r, remoteOpts...)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", r.Name(), err)
	}
	return s.Add(ctx, r.Name(), img)
}
