package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/runc/libcontainer/configs"
	lcseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
)

// TestSeccompProfileReachesContainerConfig checks what libcontainer is
// given for each profile: Docker's default denies by default with EPERM
// and leaves keyctl out, allows mount only to a container holding
// CAP_SYS_ADMIN, and is dropped for a privileged container; a Localhost
// file is read; no profile is none. A binary without the seccomp tag
// refuses a profile instead of running the container unfiltered.
func TestSeccompProfileReachesContainerConfig(t *testing.T) {
	spec := Spec{ID: "c", Layers: []string{"/l"}, Args: []string{"/x"}}
	config := func(s Seccomp, mutate func(*Spec)) (*configs.Config, error) {
		sp := spec
		sp.Security.Seccomp = s
		if mutate != nil {
			mutate(&sp)
		}
		return libcontainerConfig(sp, "/rootfs", "skiff-test")
	}
	if major, _, _ := lcseccomp.Version(); major == 0 {
		if _, err := config(Seccomp{Type: SeccompRuntimeDefault}, nil); !errors.Is(err, ErrSeccompUnsupported) {
			t.Fatalf("built without the seccomp tag: %v, want ErrSeccompUnsupported", err)
		}
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must build with -tags seccomp (the Makefile's GOFLAGS)")
		}
		t.Skip("built without -tags seccomp")
	}
	allowed := func(c *configs.Config, name string) bool {
		return slices.ContainsFunc(c.Seccomp.Syscalls, func(s *configs.Syscall) bool {
			return s.Name == name && s.Action == configs.Allow
		})
	}
	cfg, err := config(Seccomp{Type: SeccompRuntimeDefault}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Seccomp == nil || cfg.Seccomp.DefaultAction != configs.Errno || cfg.Seccomp.DefaultErrnoRet == nil || *cfg.Seccomp.DefaultErrnoRet != 1 {
		t.Fatalf("default profile: %+v", cfg.Seccomp)
	}
	if allowed(cfg, "keyctl") || allowed(cfg, "mount") || !allowed(cfg, "read") {
		t.Fatalf("default profile allows keyctl %v, mount %v, read %v", allowed(cfg, "keyctl"), allowed(cfg, "mount"), allowed(cfg, "read"))
	}
	admin, err := config(Seccomp{Type: SeccompRuntimeDefault}, func(s *Spec) {
		s.Security.Capabilities = append(slices.Clone(DefaultCapabilities), "CAP_SYS_ADMIN")
	})
	if err != nil || !allowed(admin, "mount") {
		t.Fatalf("with CAP_SYS_ADMIN mount is allowed: %v", err)
	}
	if priv, err := config(Seccomp{Type: SeccompRuntimeDefault}, func(s *Spec) { s.Security.Privileged = true }); err != nil || priv.Seccomp != nil {
		t.Fatalf("privileged: %+v %v", priv.Seccomp, err)
	}
	if none, err := config(Seccomp{}, nil); err != nil || none.Seccomp != nil {
		t.Fatalf("unconfined: %+v %v", none.Seccomp, err)
	}
	file := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(file, []byte(`{"defaultAction": "SCMP_ACT_LOG"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if local, err := config(Seccomp{Type: SeccompLocalhost, LocalhostPath: file}, nil); err != nil || local.Seccomp == nil || local.Seccomp.DefaultAction != configs.Log {
		t.Fatalf("localhost: %+v %v", local, err)
	}
	if _, err := config(Seccomp{Type: SeccompLocalhost, LocalhostPath: file + ".missing"}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing localhost profile: %v", err)
	}
}
