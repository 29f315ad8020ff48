package nodeagent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/nodeagent/image"
)

// errPullBackoff: the image failed to pull recently and its back-off has
// not passed; reported as ImagePullBackOff.
var errPullBackoff = errors.New("back-off pulling image")

// pull fetches ref into the image store, at most once at a time per
// reference, with the pod's imagePullSecrets. Failures back off per image
// (10 s doubling to 5 min); retryIn says when to try again.
func (a *Agent) pull(ctx context.Context, pod *corev1.Pod, ref string) (retryIn time.Duration, err error) {
	key := "pull/" + ref
	bo := a.pods.backoff
	now := time.Now()
	if bo.IsInBackOffSinceUpdate(key, now) {
		return bo.Get(key), fmt.Errorf("%w %q", errPullBackoff, ref)
	}
	_, err, _ = a.pulls.Do(ref, func() (any, error) {
		keychain, err := a.pullKeychain(ctx, pod)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		opts := image.PullOptions{Insecure: a.insecure(ref), Keychain: keychain}
		if len(a.cfg.RegistryMirrors) > 0 {
			opts.Transport = &mirrorTransport{mirrors: a.cfg.RegistryMirrors, next: http.DefaultTransport}
		}
		_, err = a.cfg.Images.Pull(ctx, ref, opts)
		if err == nil {
			a.log.Info("pulled image", "image", ref, "took", time.Since(start))
		}
		return nil, err
	})
	if err != nil {
		bo.Next(key, now)
		return bo.Get(key), fmt.Errorf("failed to pull image %q: %w", ref, err)
	}
	bo.Reset(key)
	return 0, nil
}

// insecure reports whether ref's registry is one allowed over plain HTTP.
func (a *Agent) insecure(ref string) bool {
	r, err := name.ParseReference(ref)
	if err != nil {
		return false
	}
	host := r.Context().RegistryStr()
	return slices.Contains(a.cfg.InsecureRegistries, host) || slices.Contains(a.cfg.InsecureRegistries, "*")
}

// pullKeychain reads the pod's imagePullSecrets (dockerconfigjson or
// dockercfg) into a keychain, falling back to the node's own credentials.
func (a *Agent) pullKeychain(ctx context.Context, pod *corev1.Pod) (authn.Keychain, error) {
	if len(pod.Spec.ImagePullSecrets) == 0 {
		return authn.DefaultKeychain, nil
	}
	auths := map[string]authn.AuthConfig{}
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := a.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			// The kubelet pulls without a secret it cannot read.
			a.log.Warn("reading imagePullSecret", "secret", pod.Namespace+"/"+ref.Name, "err", err)
			continue
		}
		if err := parseDockerAuths(s, auths); err != nil {
			a.log.Warn("parsing imagePullSecret", "secret", pod.Namespace+"/"+ref.Name, "err", err)
		}
	}
	return authn.NewMultiKeychain(secretKeychain(auths), authn.DefaultKeychain), nil
}

func parseDockerAuths(s *corev1.Secret, into map[string]authn.AuthConfig) error {
	var cfg struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	switch {
	case s.Type == corev1.SecretTypeDockerConfigJson || len(s.Data[corev1.DockerConfigJsonKey]) > 0:
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return err
		}
	case len(s.Data[corev1.DockerConfigKey]) > 0:
		if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &cfg.Auths); err != nil {
			return err
		}
	default:
		return fmt.Errorf("secret of type %s holds no docker config", s.Type)
	}
	for host, ac := range cfg.Auths {
		if ac.Auth != "" && ac.Username == "" {
			if raw, err := base64.StdEncoding.DecodeString(ac.Auth); err == nil {
				ac.Username, ac.Password, _ = strings.Cut(string(raw), ":")
				ac.Auth = ""
			}
		}
		host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
		host, _, _ = strings.Cut(host, "/")
		if host == "docker.io" || host == "registry-1.docker.io" {
			host = name.DefaultRegistry
		}
		into[host] = ac
	}
	return nil
}

// secretKeychain resolves credentials by registry host.
type secretKeychain map[string]authn.AuthConfig

func (k secretKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if ac, ok := k[r.RegistryStr()]; ok {
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}
