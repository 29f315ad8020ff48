package runtime

import (
	"errors"
	"fmt"
	"os"

	mobyseccomp "github.com/moby/profiles/seccomp"
	lcseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrSeccompUnsupported: the binary was built without libcontainer's
// seccomp support (the seccomp build tag, with libseccomp), so it cannot
// apply a profile. Starting the container unfiltered instead would
// silently weaken what the pod asked for.
var ErrSeccompUnsupported = errors.New("seccomp profiles need a binary built with -tags seccomp (libseccomp-dev)")

// ociSeccomp is the OCI seccomp section for the container's profile, nil
// for none. The profile is resolved against the finished spec: Docker's
// default allows some system calls only to holders of a capability (mount
// with CAP_SYS_ADMIN, for example), as it does for docker run.
func ociSeccomp(p Seccomp, oci *specs.Spec) (*specs.LinuxSeccomp, error) {
	if p.Type == "" {
		return nil, nil
	}
	if major, _, _ := lcseccomp.Version(); major == 0 {
		return nil, ErrSeccompUnsupported
	}
	switch p.Type {
	case SeccompRuntimeDefault:
		out, err := mobyseccomp.GetDefaultProfile(oci)
		if err != nil {
			return nil, fmt.Errorf("default seccomp profile: %w", err)
		}
		return out, nil
	case SeccompLocalhost:
		data, err := os.ReadFile(p.LocalhostPath)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
		out, err := mobyseccomp.LoadProfile(string(data), oci)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile %s: %w", p.LocalhostPath, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown seccomp profile type %q", ErrInvalid, p.Type)
	}
}
