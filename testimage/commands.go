package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: testimage [echo ARGS... | sleep SECONDS | serve [--port N] |
                  get [--count N] [--sa] URL | resolve NAME |
                  exit CODE | alloc MiB | write FILE CONTENT | cat FILE... |
                  udp HOST:PORT MESSAGE | keyctl]`

// run dispatches a subcommand and returns the process exit code. It never
// calls os.Exit itself so that tests can drive it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return runServe(nil, stdout, stderr)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "echo":
		fmt.Fprintln(stdout, strings.Join(rest, " "))
		return 0
	case "sleep":
		return runSleep(rest, stderr)
	case "serve":
		return runServe(rest, stdout, stderr)
	case "get":
		return runGet(rest, stdout, stderr)
	case "resolve":
		return runResolve(rest, stdout, stderr)
	case "exit":
		return runExit(rest, stderr)
	case "alloc":
		return runAlloc(rest, stdout, stderr)
	case "write":
		return runWrite(rest, stderr)
	case "cat":
		return runCat(rest, stdout, stderr)
	case "udp":
		return runUDP(rest, stdout, stderr)
	case "keyctl":
		return runKeyctl(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "testimage: unknown subcommand %q\n%s\n", cmd, usage)
		return 2
	}
}

// terminated returns a context cancelled by SIGTERM or SIGINT. Installing the
// handler matters: a PID 1 without one never sees SIGTERM at all.
func terminated() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

func runSleep(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: testimage sleep SECONDS")
		return 2
	}
	secs, err := strconv.ParseFloat(args[0], 64)
	if err != nil || secs < 0 {
		fmt.Fprintf(stderr, "testimage sleep: bad duration %q\n", args[0])
		return 2
	}
	// Behave like a plain program running as a container's PID 1 with no
	// SIGTERM handler: the signal has no effect, so only SIGKILL stops us.
	// (The Go runtime would otherwise turn SIGTERM into exit status 2.)
	signal.Ignore(syscall.SIGTERM)
	time.Sleep(time.Duration(secs * float64(time.Second)))
	return 0
}

func runExit(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: testimage exit CODE")
		return 2
	}
	code, err := strconv.Atoi(args[0])
	if err != nil || code < 0 || code > 255 {
		fmt.Fprintf(stderr, "testimage exit: bad code %q\n", args[0])
		return 2
	}
	return code
}

func runWrite(args []string, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: testimage write FILE CONTENT")
		return 2
	}
	if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
		fmt.Fprintf(stderr, "testimage write: %v\n", err)
		return 1
	}
	return 0
}

func runCat(args []string, stdout, stderr io.Writer) int {
	for _, name := range args {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "testimage cat: %v\n", err)
			return 1
		}
		stdout.Write(data)
	}
	return 0
}

const mib = 1 << 20

func runAlloc(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: testimage alloc MiB")
		return 2
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		fmt.Fprintf(stderr, "testimage alloc: bad size %q\n", args[0])
		return 2
	}
	held := allocate(n)
	fmt.Fprintf(stdout, "allocated %d MiB\n", n)
	ctx, stop := terminated()
	defer stop()
	<-ctx.Done()
	_ = len(held) // keep the memory reachable until we are told to stop
	return 0
}

// allocate returns n MiB of memory with every page written, so that it is
// charged to the memory cgroup rather than merely reserved.
func allocate(n int) [][]byte {
	held := make([][]byte, 0, n)
	page := os.Getpagesize()
	for range n {
		b := make([]byte, mib)
		for i := 0; i < len(b); i += page {
			b[i] = 1
		}
		held = append(held, b)
	}
	return held
}
