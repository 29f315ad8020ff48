package runtime

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"

	// Turns the garbage collector off in a container's init process, among the first
	// package initializers; see its doc.
	"github.com/skiff-dev/skiff/nodeagent/runtime/initgc"

	// Device rules for the cgroup manager; without it creating a
	// container with device rules fails.
	_ "github.com/opencontainers/cgroups/devices"
	// The C constructor that sets up namespaces in the "init" child
	// before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// InitArg is the first argument with which libcontainer re-executes the
// running binary (/proc/self/exe) as a container's first process. No
// subcommand of a binary using this package may have that name.
const InitArg = initgc.Arg

// MaybeInit must be the first thing main (or a test binary's TestMain)
// does. In a process started by libcontainer as a container's init it sets
// up the container and executes the container's program, never returning;
// in any other process it returns at once.
func MaybeInit() {
	if len(os.Args) > 1 && os.Args[1] == InitArg {
		libcontainer.Init() // does not return
	}
}
