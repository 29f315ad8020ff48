// Package runtime runs the containers of the node agent: it turns a
// container Spec (image layers, command, resources, namespaces) into a
// running, supervised container, reports how it ended, and finds its
// containers again after the agent restarts. Libcontainer is the real
// implementation, on runc's libcontainer; Hollow pretends, for simulating
// many nodes on one machine.
package runtime

import (
	"context"
	"errors"
	"io"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// Runtime creates, supervises and removes containers. Implementations are
// safe for concurrent use.
type Runtime interface {
	// Start creates the container described by spec and starts its
	// process. It returns once the process runs.
	Start(ctx context.Context, spec Spec) (Status, error)
	// Status reports a container's current status.
	Status(ctx context.Context, id string) (Status, error)
	// Wait blocks until the container has exited or ctx is done.
	Wait(ctx context.Context, id string) (Status, error)
	// Signal sends sig to the container's main process.
	Signal(ctx context.Context, id string, sig syscall.Signal) error
	// Stop sends SIGTERM, waits up to grace, then sends SIGKILL, and
	// returns the final status.
	Stop(ctx context.Context, id string, grace time.Duration) (Status, error)
	// Exec runs a further process inside a running container and returns
	// its exit code.
	Exec(ctx context.Context, id string, spec ExecSpec) (int, error)
	// Remove kills the container if it still runs and deletes everything
	// it left: cgroup, mounts, state and logs.
	Remove(ctx context.Context, id string) error
	// List reports every container the runtime knows, including those
	// found again after a restart.
	List(ctx context.Context) ([]Status, error)
}

// Errors returned by runtimes; test with errors.Is.
var (
	ErrNotFound   = errors.New("container not found")
	ErrExists     = errors.New("container already exists")
	ErrNotRunning = errors.New("container is not running")
	ErrInvalid    = errors.New("invalid container spec")
)

// Spec describes a container to start.
type Spec struct {
	// ID names the container on this node: letters, digits, '_', '-', '.'.
	ID string
	// CgroupParent groups containers, typically by pod: the container's
	// cgroup is <cgroup root>/<CgroupParent>/<ID>.
	CgroupParent string
	// Layers are the unpacked image layer directories, base layer first,
	// as nodeagent/image returns them. They are stacked read-only.
	Layers []string
	// Args is the full command line: the image's entrypoint and command
	// already merged with the pod's overrides.
	Args       []string
	Env        []string
	WorkingDir string
	UID, GID   uint32
	// Hostname defaults to ID.
	Hostname string
	// NetNSPath joins an existing network namespace (a pod's containers
	// share one); empty creates a fresh one holding only loopback.
	NetNSPath string
	Resources Resources
	// Mounts are bind mounts into the container (volumes, /etc/hosts).
	Mounts []Mount `json:",omitempty"`
	// Security holds securityContext basics; the zero value gives the
	// default capabilities and a writable root.
	Security Security `json:",omitzero"`
	// Annotations are kept with the container and reported in its
	// Status, so that its owner finds what it needs after a restart
	// (the agent keeps the image and pod there).
	Annotations map[string]string `json:",omitempty"`
}

// Mount bind-mounts Source (a host path) at Destination in the container.
type Mount struct {
	Source      string
	Destination string
	ReadOnly    bool `json:",omitempty"`
}

// Security is the part of a securityContext the runtime applies.
type Security struct {
	// Capabilities replaces the default capability set when not nil
	// ("CAP_" names).
	Capabilities []string `json:",omitempty"`
	// Privileged gives every capability (and leaves /sys writable).
	Privileged         bool     `json:",omitempty"`
	ReadOnlyRootfs     bool     `json:",omitempty"`
	NoNewPrivileges    bool     `json:",omitempty"`
	SupplementalGroups []uint32 `json:",omitempty"`
	// Seccomp filters the container's system calls; the zero value
	// leaves them unfiltered (Kubernetes' Unconfined, its default).
	Seccomp Seccomp `json:",omitzero"`
}

// Seccomp names a seccomp profile as a pod's seccompProfile does.
type Seccomp struct {
	// Type is SeccompRuntimeDefault, SeccompLocalhost or "" (unconfined).
	Type string `json:",omitempty"`
	// LocalhostPath is the profile's JSON file on the node, for
	// SeccompLocalhost: Docker's profile format, which holds the OCI one.
	LocalhostPath string `json:",omitempty"`
}

// Seccomp profile types, as Kubernetes names them.
const (
	// SeccompRuntimeDefault is the runtime's default profile: Docker's
	// (github.com/moby/profiles/seccomp), which containerd and CRI-O
	// also ship.
	SeccompRuntimeDefault = "RuntimeDefault"
	SeccompLocalhost      = "Localhost"
)

// Resources limits a container; zero values mean no limit.
type Resources struct {
	MemoryLimitBytes int64
	CPUShares        uint64
	CPUQuotaMicros   int64
	CPUPeriodMicros  uint64
	PidsLimit        int64
}

// ExecSpec describes a process to run in a running container. It runs as
// the container's user, as kubectl exec does.
type ExecSpec struct {
	Args []string
	// Env defaults to the container's environment.
	Env []string
	// WorkingDir defaults to the container's.
	WorkingDir string
	// Stdin, if set, feeds the process's standard input.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// State is where a container is in its life.
type State string

const (
	StateRunning State = "running"
	StateExited  State = "exited"
)

// Reasons for an exit, as Kubernetes names them in ContainerStateTerminated.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
	// ReasonUnknown: the container ended while no agent watched it and its
	// exit code could not be recovered; ExitCode is then 137, as kubelet
	// reports for a container it lost track of.
	ReasonUnknown = "ContainerStatusUnknown"
)

// Status is a container's observed state.
type Status struct {
	ID    string
	State State
	// Pid is the main process in the host's PID namespace, while running.
	Pid        int
	StartedAt  time.Time
	FinishedAt time.Time
	// ExitCode is the process's exit status, or 128+signal if a signal
	// killed it. Set once State is StateExited.
	ExitCode  int
	OOMKilled bool
	Reason    string
	// StdoutPath and StderrPath are the container's log files.
	StdoutPath string
	StderrPath string
	// Annotations are the container's Spec.Annotations.
	Annotations map[string]string
}

// idPattern is compiled on first use, not at package initialization: the counted
// repetition makes a large program (118 KB, 0.3 ms), and every container's init process
// (the skiff binary re-executed) runs this package's initializers without ever using it.
var idPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`) })

// validID reports whether id can name a container (and a directory).
func validID(id string) bool { return idPattern().MatchString(id) }

// exitReason classifies a finished container the way kubelet does.
func exitReason(code int, oom bool) string {
	switch {
	case oom:
		return ReasonOOMKilled
	case code == 0:
		return ReasonCompleted
	default:
		return ReasonError
	}
}

func isNotRunning(err error) bool { return errors.Is(err, ErrNotRunning) }
