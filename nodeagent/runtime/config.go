package runtime

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultPath is set when neither the image nor the pod gives a PATH.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultCapabilities is the set containerd and CRI-O grant a container
// that asks for nothing else, which is what Kubernetes users expect.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// libcontainerConfig builds the container's configuration through an OCI
// runtime spec, so that runc's own conversion supplies the defaults (device
// nodes and rules, mount flags) exactly as runc would.
func libcontainerConfig(spec Spec, rootfs, cgroupRoot string) (*configs.Config, error) {
	hostname := spec.Hostname
	if hostname == "" {
		hostname = spec.ID
	}
	netns := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: spec.NetNSPath}
	caps := DefaultCapabilities
	switch {
	case spec.Security.Privileged:
		caps = allCapabilities()
	case spec.Security.Capabilities != nil:
		caps = spec.Security.Capabilities
	}
	oci := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: rootfs, Readonly: spec.Security.ReadOnlyRootfs},
		Hostname: hostname,
		Process: &specs.Process{
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			NoNewPrivileges: spec.Security.NoNewPrivileges,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroupPath(cgroupRoot, spec),
			Resources:   ociResources(spec.Resources),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				netns,
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
				"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	if spec.Security.Privileged {
		oci.Linux.MaskedPaths, oci.Linux.ReadonlyPaths = nil, nil
	} else {
		// A privileged container runs unconfined whatever its profile, as
		// containerd and CRI-O run it.
		sc, err := ociSeccomp(spec.Security.Seccomp, oci)
		if err != nil {
			return nil, err
		}
		oci.Linux.Seccomp = sc
	}
	for _, m := range spec.Mounts {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		oci.Mounts = append(oci.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: spec.ID, Spec: oci})
	if err != nil {
		return nil, fmt.Errorf("container config: %w", err)
	}
	return cfg, nil
}

// allCapabilities lists every capability the running kernel knows.
func allCapabilities() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}

// cgroupPath is absolute below every controller's mount point; with the
// cgroupfs manager it is used as is, e.g. /skiff/<pod>/<container>.
func cgroupPath(cgroupRoot string, spec Spec) string {
	return filepath.Join("/", cgroupRoot, spec.CgroupParent, spec.ID)
}

func ociResources(r Resources) *specs.LinuxResources {
	out := &specs.LinuxResources{
		// Deny all devices but the defaults runc adds back.
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if r.MemoryLimitBytes > 0 {
		out.Memory = &specs.LinuxMemory{Limit: &r.MemoryLimitBytes}
	}
	if r.CPUShares > 0 || r.CPUQuotaMicros > 0 || r.CPUPeriodMicros > 0 {
		out.CPU = &specs.LinuxCPU{}
		if r.CPUShares > 0 {
			out.CPU.Shares = &r.CPUShares
		}
		if r.CPUQuotaMicros > 0 {
			out.CPU.Quota = &r.CPUQuotaMicros
		}
		if r.CPUPeriodMicros > 0 {
			out.CPU.Period = &r.CPUPeriodMicros
		}
	}
	if r.PidsLimit > 0 {
		out.Pids = &specs.LinuxPids{Limit: &r.PidsLimit}
	}
	return out
}

// withDefaultPath adds a PATH to env unless it has one.
func withDefaultPath(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	return append(append([]string(nil), env...), defaultPath)
}
