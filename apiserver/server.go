package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/skiff-dev/skiff/apiserver/internal/groupwrite"
)

// Server serves the Kubernetes API of one control node.
type Server struct {
	cfg      Config
	codecs   *codecs
	reg      *registry
	objs     *objectStore
	metrics  *metrics
	authz    *authorizer
	openapi  *openAPI
	inflight *inflight
	fms      fieldManagers
	// patchMetas holds each resource's strategic merge patch schema (*Resource -> LookupPatchMeta).
	patchMetas sync.Map
	handler    http.Handler

	hubs *watchHubs // the per-node watch fan-out, running while Serve runs
	// selCaches holds a *selectorCache per *Resource: what selectors see of each stored
	// object, so that filtered lists decode only what they return.
	selCaches sync.Map

	kubeletOnce sync.Once
	kubeletRT   http.RoundTripper // to node agents, built on first use
}

// New builds a server; it starts nothing.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c, err := newCodecs()
	if err != nil {
		return nil, err
	}
	reg, err := newRegistry(c, builtinResources())
	if err != nil {
		return nil, err
	}
	svcClaims, err := newServiceClaims(cfg.ServiceCIDR, cfg.NodePortMin, cfg.NodePortMax)
	if err != nil {
		return nil, err
	}
	reg.lookup("", "v1", "services").Claims = svcClaims
	s := &Server{cfg: cfg, codecs: c, reg: reg, objs: &objectStore{store: cfg.Store, codecs: c}}
	if s.metrics, err = newMetrics(cfg.Metrics, cfg.Store); err != nil {
		return nil, err
	}
	s.authz = newAuthorizer(s)
	s.inflight = newInflight(cfg.MaxRequestsInflight, cfg.MaxMutatingRequestsInflight, cfg.RequestTimeout/4, s.metrics)
	s.hubs = &watchHubs{s: s}
	if s.openapi, err = newOpenAPI(s); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the whole API, for tests and for callers that serve it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTPS on ln until ctx ends, then shuts down (open watches are cancelled).
// It also creates the default namespaces and RBAC roles once a leader accepts writes.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{s.cfg.ServingCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.cfg.ClientCA,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	s.hubs.run(ctx, &wg)
	s.authz.cache.run(ctx, &wg)
	if !s.cfg.SkipBootstrap {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.bootstrap(ctx)
		}()
	}
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- srv.Serve(tls.NewListener(groupwrite.Listener{Listener: ln}, tlsCfg))
	}()
	select {
	case <-ctx.Done():
		// Watches hold their requests open; BaseContext's cancellation ends them, and
		// Shutdown waits for the handlers to return.
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverPanics, noCache, s.instrument, s.limitDuration)
	r.Get("/healthz", s.serveHealth)
	r.Get("/livez", s.serveLive)
	r.Get("/readyz", s.serveHealth)
	for path, h := range s.cfg.Unauthenticated {
		r.Handle(path, h)
		r.Handle(path+"/*", h)
	}
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, s.inflight.limit, s.authorize)
		r.Get("/version", s.serveVersion)
		r.Handle("/metrics", s.metrics.handler())
		// Profiles: a non-resource path that only cluster-admin's "*" rule (and
		// system:masters) reaches; no default role grants it.
		r.HandleFunc("/debug/pprof/*", servePprof)
		r.Get("/api", s.serveCoreGroups)
		r.Get("/api/", s.serveCoreGroups)
		r.Get("/apis", s.serveGroups)
		r.Get("/apis/", s.serveGroups)
		r.Get("/openapi/v2", s.openapi.serveV2)
		r.Get("/openapi/v3", s.openapi.serveV3Root)
		r.Get("/openapi/v3/*", s.openapi.serveV3)
		r.Get("/api/v1", func(w http.ResponseWriter, r *http.Request) { s.serveResourceList(w, r, "", "v1") })
		r.Get("/apis/{group}", func(w http.ResponseWriter, r *http.Request) { s.serveGroup(w, r, chi.URLParam(r, "group")) })
		r.Get("/apis/{group}/{version}", func(w http.ResponseWriter, r *http.Request) {
			s.serveResourceList(w, r, chi.URLParam(r, "group"), chi.URLParam(r, "version"))
		})
		r.HandleFunc("/api/v1/*", s.serveResource)
		r.HandleFunc("/apis/{group}/{version}/*", s.serveResource)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeError(w, errNotFoundPath(r), groupResourceNone, "") })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, toStatus(errMethodNotAllowed(r), groupResourceNone, ""))
	})
	return r
}
