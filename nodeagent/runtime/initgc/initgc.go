// Package initgc makes a container's `runc init` process cheaper. libcontainer starts every
// container by re-executing the agent's own binary as `/proc/self/exe init`, so before
// libcontainer.Init runs, that process starts the Go runtime and every package initializer
// of the skiff binary (about 400; client-go's scheme registration alone is a sixth of the
// process's CPU). Those initializers allocate about 3.5 MB, nearly all of it kept (schemes,
// protobuf registries), so the garbage collector ran during them, on a second P, for
// nothing: measured on `skiff init` outside a container, GOGC=off or GOMAXPROCS=1 each took
// 2-3 ms of the process's ~17-25 ms of CPU (bench/README.md, bench: pods).
//
// libcontainer gives that process a fresh environment (only GOMAXPROCS passes through), so
// GOGC cannot be set from outside. Instead this package, which imports only what the
// runtime needs, is initialized among the first packages (Go initializes, in import-path
// order, the first package whose imports are all initialized), before the heavy ones, and
// in that process only turns the collector off and keeps one P. The process executes the
// container's program a few milliseconds later, which frees everything; its peak RSS was
// the same with the collector on or off (77 MB, most of it the binary's shared pages), so
// a small memory limit on the container is no more at risk.
//
// Every binary that embeds libcontainer's init gets this by importing nodeagent/runtime.
package initgc

import (
	"os"
	"runtime"
	"runtime/debug"
)

// Arg is the first argument libcontainer re-executes the binary with (runtime.InitArg).
const Arg = "init"

// Active reports whether this process is a container's init, where init turned the
// collector off.
var Active bool

func init() {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		Active = true
		debug.SetGCPercent(-1)
		runtime.GOMAXPROCS(1)
	}
}
