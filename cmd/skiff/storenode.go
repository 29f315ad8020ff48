package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/raftstore"
)

// storeNodeFlags are the flags of `skiff store-node`.
type storeNodeFlags struct {
	id, dir, raftAddr, clientAddr, peers, secret, pprofAddr string
	bootstrap                                               bool
}

// newStoreNodeCmd runs one bare raftstore node as its own process, with a small HTTP client
// API. It exists for `skiff bench store` and for debugging the store without the apiserver;
// it is hidden because it is not how a cluster is run.
func newStoreNodeCmd() *cobra.Command {
	var f storeNodeFlags
	cmd := &cobra.Command{
		Use:    "store-node",
		Short:  "Run one bare raftstore node with an HTTP client API (benchmarks, debugging)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStoreNode(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "node ID, stable across restarts (required)")
	fl.StringVar(&f.dir, "dir", "", "data directory (required)")
	fl.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7000", "address for Raft and forwarding traffic")
	fl.StringVar(&f.clientAddr, "client-addr", "127.0.0.1:7001", "address of the HTTP client API")
	fl.StringVar(&f.peers, "peers", "", "initial members as id=addr,... (this node included), for --bootstrap")
	fl.BoolVar(&f.bootstrap, "bootstrap", false, "bootstrap a new cluster from --peers unless the data directory has state")
	fl.StringVar(&f.secret, "secret", "", "cluster secret shared by all nodes (required)")
	fl.StringVar(&f.pprofAddr, "pprof-addr", "", "serve net/http/pprof on this address (off when empty)")
	for _, name := range []string{"id", "dir", "secret"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// parsePeers parses id=addr,id=addr.
func parsePeers(s string) ([]raftstore.Server, error) {
	var out []raftstore.Server
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("bad peer %q: want id=addr", p)
		}
		out = append(out, raftstore.Server{ID: id, Address: addr, Voter: true})
	}
	return out, nil
}

func runStoreNode(ctx context.Context, f storeNodeFlags) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", f.id)
	peers, err := parsePeers(f.peers)
	if err != nil {
		return err
	}
	if f.bootstrap && len(peers) == 0 {
		return errors.New("--bootstrap needs --peers")
	}
	hadState, err := raftstore.HasState(f.dir)
	if err != nil {
		return fmt.Errorf("store-node: inspect %s: %w", f.dir, err)
	}
	layer, err := raftstore.ListenTCP(f.raftAddr)
	if err != nil {
		return fmt.Errorf("store-node: listen %s: %w", f.raftAddr, err)
	}
	store, err := raftstore.Open(raftstore.Config{
		ID: f.id, Dir: f.dir, Layer: layer, Secret: []byte(f.secret),
		Logger: log, RaftLog: os.Stderr,
	})
	if err != nil {
		return fmt.Errorf("store-node: open store: %w", err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			log.Warn("close store", "err", cerr)
		}
	}()
	if f.bootstrap && !hadState {
		if err := store.Bootstrap(peers); err != nil {
			return fmt.Errorf("store-node: bootstrap: %w", err)
		}
	}

	servers := []*http.Server{{Addr: f.clientAddr, Handler: newStoreAPI(store, log)}}
	if f.pprofAddr != "" {
		servers = append(servers, &http.Server{Addr: f.pprofAddr, Handler: pprofMux()})
	}
	log.Info("store node running", "raft", layer.Addr(), "client", f.clientAddr, "pprof", f.pprofAddr)
	return serveAll(ctx, servers)
}

// serveAll serves every server until ctx ends or one fails, then shuts them all down and
// waits for them. Requests see a context cancelled at shutdown, so streaming watches end.
func serveAll(ctx context.Context, servers []*http.Server) error {
	var lns []net.Listener
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("store-node: listen %s: %w", srv.Addr, err)
		}
		lns = append(lns, ln)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		srv.BaseContext = func(net.Listener) context.Context { return ctx }
		srv.ReadHeaderTimeout = 10 * time.Second
		wg.Go(func() {
			if err := srv.Serve(lns[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("store-node: serve %s: %w", srv.Addr, err)
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	for _, srv := range servers {
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}
	wg.Wait()
	return err
}

// pprofMux serves net/http/pprof on a mux of its own, so that profiling is reachable only on
// --pprof-addr (the package also registers itself on http.DefaultServeMux, never served here).
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}
