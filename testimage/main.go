// Command testimage is the program inside skiff's test container image, in the
// spirit of Kubernetes' agnhost: one small static binary whose subcommands
// exercise what a node agent must handle (output, exit codes, signals, HTTP
// probes, memory limits, files). Build it with CGO_ENABLED=0 so it runs in an
// image that holds nothing else.
//
// Usage:
//
//	testimage                     serve HTTP on :8080 until SIGTERM
//	testimage echo ARGS...        print the arguments joined by spaces
//	testimage sleep SECONDS       sleep, ignoring SIGTERM (like a PID 1 without a handler)
//	testimage serve --port N [--udp-port M]
//	                              serve HTTP on port N (/hostname, /clientip, ...) until
//	                              SIGTERM; with --udp-port also answer UDP on M
//	testimage get [--count N] [--sa] URL
//	                              GET URL N times, print each body on its own line; fail
//	                              on any error or non-2xx answer; --sa sends the pod's
//	                              service account token and trusts its ca.crt
//	testimage resolve NAME        print NAME's addresses one per line; fail when none
//	testimage exit CODE           exit with CODE
//	testimage alloc MiB           allocate and touch MiB mebibytes, then sleep
//	testimage write FILE CONTENT  write CONTENT to FILE
//	testimage cat FILE...         print the files' contents
//	testimage udp HOST:PORT MSG   send MSG in a datagram, print the answer; fail without one
//	testimage keyctl              try the keyctl system call, print "keyctl: ok" or its errno
//
// No subcommand is named "init": binaries that embed libcontainer reserve it.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
