package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 8080, "TCP port to listen on (0 picks one)")
	udpPort := fs.Int("udp-port", -1, "also answer UDP on this port (0 picks one; see serveUDP)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		fmt.Fprintf(stderr, "testimage serve: %v\n", err)
		return 1
	}
	ctx, stop := terminated()
	defer stop()
	if *udpPort >= 0 {
		pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", *udpPort))
		if err != nil {
			fmt.Fprintf(stderr, "testimage serve: %v\n", err)
			return 1
		}
		defer pc.Close()
		fmt.Fprintf(stdout, "listening on udp %s\n", pc.LocalAddr())
		go serveUDP(pc)
	}
	if err := serve(ctx, ln, stdout); err != nil {
		fmt.Fprintf(stderr, "testimage serve: %v\n", err)
		return 1
	}
	return 0
}

// serve answers HTTP on ln until ctx is cancelled, then shuts down gracefully
// and returns nil: being told to stop is a clean exit, not an error.
func serve(ctx context.Context, ln net.Listener, stdout io.Writer) error {
	srv := &http.Server{Handler: newHandler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func newHandler() http.Handler {
	var notReady atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if notReady.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /readyz/fail", func(w http.ResponseWriter, _ *http.Request) {
		notReady.Store(true)
		io.WriteString(w, "readiness now failing\n")
	})
	mux.HandleFunc("POST /readyz/ok", func(w http.ResponseWriter, _ *http.Request) {
		notReady.Store(false)
		io.WriteString(w, "readiness now ok\n")
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, _ *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		io.WriteString(w, strings.Join(env, "\n")+"\n")
	})
	mux.HandleFunc("GET /clientip", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, host+"\n")
	})
	mux.HandleFunc("GET /hostname", func(w http.ResponseWriter, _ *http.Request) {
		name, err := os.Hostname()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, name+"\n")
	})
	return mux
}

// serveUDP answers each datagram, as agnhost netexec's UDP server: "hostname"
// with the host name, "clientip" with the sender's address, anything else
// with itself. It returns when pc is closed.
func serveUDP(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		reply := string(buf[:n])
		switch strings.TrimSpace(reply) {
		case "hostname":
			reply, _ = os.Hostname()
		case "clientip":
			reply, _, _ = net.SplitHostPort(from.String())
		}
		_, _ = pc.WriteTo([]byte(reply+"\n"), from)
	}
}
