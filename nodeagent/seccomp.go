package nodeagent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// errSeccompProfile: a container's Localhost seccomp profile cannot be
// used (missing, or naming a file outside the profile root).
var errSeccompProfile = errors.New("seccomp profile")

// seccompProfile turns a container's effective seccompProfile (its own, or
// else its pod's) into the runtime's. Unset is Unconfined, as for a kubelet
// without --seccomp-default. A Localhost profile is a file below
// Config.SeccompProfileRoot, checked here so that a missing one is reported
// in the container's status by name.
func (a *Agent) seccompProfile(p *corev1.SeccompProfile) (runtime.Seccomp, error) {
	if p == nil {
		return runtime.Seccomp{}, nil
	}
	switch p.Type {
	case corev1.SeccompProfileTypeUnconfined:
		return runtime.Seccomp{}, nil
	case corev1.SeccompProfileTypeRuntimeDefault:
		return runtime.Seccomp{Type: runtime.SeccompRuntimeDefault}, nil
	case corev1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || !filepath.IsLocal(*p.LocalhostProfile) {
			return runtime.Seccomp{}, fmt.Errorf("%w: localhostProfile must be a relative path below the node's seccomp profile root", errSeccompProfile)
		}
		path := filepath.Join(a.cfg.SeccompProfileRoot, *p.LocalhostProfile)
		if _, err := os.Stat(path); err != nil {
			return runtime.Seccomp{}, fmt.Errorf("%w %q: %w", errSeccompProfile, *p.LocalhostProfile, err)
		}
		return runtime.Seccomp{Type: runtime.SeccompLocalhost, LocalhostPath: path}, nil
	default:
		return runtime.Seccomp{}, fmt.Errorf("%w: unknown type %q", errSeccompProfile, p.Type)
	}
}
