package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/raftstore"
)

// ServerConfig configures one control-plane server.
type ServerConfig struct {
	Name    string
	DataDir string
	Token   string // the server token; every server of a cluster has the same

	RaftAddr        string // bind address for Raft and write forwarding
	RaftAdvertise   string // defaults to RaftAddr
	GossipAddr      string
	GossipAdvertise string
	APIAddr         string
	APIAdvertise    string // host:port clients use; defaults to APIAddr

	Join            []string // gossip addresses of any members; retried until one answers
	BootstrapExpect int      // form a new cluster once this many servers see each other

	// ServiceCIDR is where Services' cluster IPs come from (default 10.96.0.0/16); every
	// server of a cluster must have the same.
	ServiceCIDR string
	// MaxRequestsInflight and MaxMutatingRequestsInflight bound the API requests served at
	// once (apiserver.Config's; 0: 400 and 200, negative: none).
	MaxRequestsInflight, MaxMutatingRequestsInflight int

	// DeadServerTimeout: a server gone longer is removed from Raft, if quorum survives.
	DeadServerTimeout time.Duration // default 2m
	// LeaderTasks run while this server leads (after the post-election barrier), each with
	// a context cancelled the moment leadership is lost: the controller manager is one.
	LeaderTasks []func(ctx context.Context, api APIAccess) error
	Logger      *slog.Logger
	LogOutput   io.Writer // raft and memberlist's own logs
	// Store tuning (timeouts, snapshot thresholds); zero values take raftstore's defaults.
	Tune func(*raftstore.Config)
}

// APIAccess lets in-process clients (the controllers) reach this server's API with an
// identity of the cluster, as every other client does.
type APIAccess struct {
	URL    string // https://host:port
	CAPEM  []byte
	Cert   *Cert // a client certificate in system:masters
	Server string
}

// Server is a running control-plane server.
type Server struct {
	cfg   ServerConfig
	keys  *Keys
	store *raftstore.Store
	api   *apiserver.Server
	gsp   *gossip
	log   *slog.Logger
	apiLn net.Listener
	admin *Cert
	// hadState: the data dir held Raft state at start, so this server never bootstraps.
	hadState bool
}

// NewServer prepares a server: keys, certificates, the store and the API. Run starts it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Name == "" || cfg.DataDir == "" {
		return nil, errors.New("cluster: a server needs a name and a data dir")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogOutput == nil {
		cfg.LogOutput = io.Discard
	}
	if cfg.DeadServerTimeout == 0 {
		cfg.DeadServerTimeout = 2 * time.Minute
	}
	keys, err := DeriveKeys(cfg.Token)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, keys: keys, log: cfg.Logger.With("server", cfg.Name)}
	// Asked before opening the store: bolt locks its file while open.
	if s.hadState, err = raftstore.HasState(filepath.Join(cfg.DataDir, "raft")); err != nil {
		return nil, err
	}
	if err := s.openStore(); err != nil {
		return nil, err
	}
	if err := s.openAPI(); err != nil {
		s.store.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) openStore() error {
	cfg := s.cfg
	peerCert, err := s.keys.Issue(CertRequest{CommonName: cfg.Name, Groups: []string{ServersGroup}, Server: true, Client: true, SerialSource: cfg.Name + "/raft"})
	if err != nil {
		return err
	}
	tc, err := tls.X509KeyPair(peerCert.CertPEM, peerCert.KeyPEM)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("cluster: raft address: %w", err)
	}
	adv := cfg.RaftAdvertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	sc := raftstore.Config{
		ID:        cfg.Name,
		Dir:       filepath.Join(cfg.DataDir, "raft"),
		Layer:     newTLSLayer(ln, s.keys, tc),
		Advertise: adv,
		Secret:    s.keys.RaftKey,
		Logger:    s.log,
		RaftLog:   cfg.LogOutput,
	}
	if cfg.Tune != nil {
		cfg.Tune(&sc)
	}
	st, err := raftstore.Open(sc)
	if err != nil {
		return err
	}
	s.store = st
	return nil
}

func (s *Server) openAPI() error {
	cfg := s.cfg
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("cluster: API address: %w", err)
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		ips = append(ips, ip)
	}
	if cfg.APIAdvertise != "" {
		if h, _, err := net.SplitHostPort(cfg.APIAdvertise); err == nil && net.ParseIP(h) != nil {
			ips = append(ips, net.ParseIP(h))
		}
	}
	// In-cluster clients (rest.InClusterConfig) dial the kubernetes Service's address.
	if kip, err := kubernetesServiceIP(cfg.ServiceCIDR); err == nil {
		ips = append(ips, net.ParseIP(kip))
	}
	serving, err := s.keys.Issue(CertRequest{
		CommonName: cfg.Name, Server: true, IPs: ips, SerialSource: cfg.Name + "/api",
		DNSNames: []string{"localhost", cfg.Name, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	})
	if err != nil {
		ln.Close()
		return err
	}
	tc, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		ln.Close()
		return err
	}
	if err := writeTLSFiles(filepath.Join(cfg.DataDir, "tls"), s.keys, serving); err != nil {
		ln.Close()
		return err
	}
	// The apiserver's certificate toward agents (logs, exec, port-forward), as
	// kube-apiserver's --kubelet-client-certificate; agents accept only system:masters.
	kc, err := s.keys.Issue(CertRequest{CommonName: "skiff-apiserver-kubelet-client", Groups: []string{"system:masters"}, Client: true, SerialSource: cfg.Name + "/kubelet-client"})
	if err != nil {
		ln.Close()
		return err
	}
	kubeletCert, err := tls.X509KeyPair(kc.CertPEM, kc.KeyPEM)
	if err != nil {
		ln.Close()
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.store.Collectors()...)
	api, err := apiserver.New(apiserver.Config{
		Store:                       s.store,
		ServingCert:                 tc,
		KubeletClientCert:           kubeletCert,
		ServiceCIDR:                 cfg.ServiceCIDR,
		ServiceAccountKey:           s.keys.ServiceAccountKey,
		MaxRequestsInflight:         cfg.MaxRequestsInflight,
		MaxMutatingRequestsInflight: cfg.MaxMutatingRequestsInflight,
		ClientCA:                    s.keys.CAPool(),
		Logger:                      s.log,
		Metrics:                     reg,
		Unauthenticated:             map[string]http.Handler{joinPath: s.joinHandler()},
	})
	if err != nil {
		ln.Close()
		return err
	}
	s.api, s.apiLn = api, ln
	s.admin, err = s.keys.Issue(CertRequest{CommonName: "skiff:leader:" + cfg.Name, Groups: []string{"system:masters"}, Client: true, SerialSource: cfg.Name + "/leader"})
	return err
}

// writeTLSFiles leaves the CA, this server's serving certificate and the agent join token
// in <data-dir>/tls for operators; the CA key is never written (it is derived from the token).
func writeTLSFiles(dir string, keys *Keys, serving *Cert) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"ca.crt": keys.CAPEM, "server.crt": serving.CertPEM, "server.key": serving.KeyPEM,
		"agent-token": []byte(keys.AgentToken() + "\n")}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Store returns the server's store (for status and tests).
func (s *Server) Store() *raftstore.Store { return s.store }

// APIURL is the URL clients reach this server's API at.
func (s *Server) APIURL() string {
	addr := s.cfg.APIAdvertise
	if addr == "" {
		addr = s.apiLn.Addr().String()
	}
	return "https://" + addr
}

// Run runs the server until ctx ends, then leaves gracefully: a leader hands leadership
// over first, gossip says goodbye, the API and the store close.
func (s *Server) Run(ctx context.Context) error {
	self := Member{Name: s.cfg.Name, Role: "server", APIAddr: s.APIURL(), RaftAddr: s.store.Addr()}
	self.Bootstrapped = s.hadState
	g, err := newGossip(gossipConfig{Name: s.cfg.Name, BindAddr: s.cfg.GossipAddr, AdvertiseAddr: s.cfg.GossipAdvertise, Key: s.keys.GossipKey, LogOutput: s.cfg.LogOutput}, self)
	if err != nil {
		return err
	}
	s.gsp = g
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := func(name string, f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(runCtx)
			s.log.Debug("stopped", "loop", name)
		}()
	}
	apiErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		apiErr <- s.api.Serve(runCtx, s.apiLn)
	}()
	start("join", s.joinLoop)
	start("bootstrap", s.bootstrapLoop)
	start("leader", s.leaderLoop)
	s.log.Info("server started", "api", s.APIURL(), "raft", s.store.Addr(), "gossip", s.cfg.GossipAddr, "bootstrapped", s.hadState)

	select {
	case <-ctx.Done():
	case err = <-apiErr:
		s.log.Error("API server stopped", "err", err)
	}
	s.leave()
	cancel()
	wg.Wait()
	return errors.Join(err, s.store.Close())
}

// leave hands over leadership and leaves gossip before the process stops.
func (s *Server) leave() {
	if s.store.IsLeader() {
		if err := s.store.TransferLeadership(); err != nil {
			s.log.Warn("leadership transfer on leave failed", "err", err)
		}
	}
	s.gsp.leave()
}

// joinLoop contacts the --join addresses until one answers (and again while alone).
func (s *Server) joinLoop(ctx context.Context) {
	if len(s.cfg.Join) == 0 {
		return
	}
	for {
		if n, err := s.gsp.join(s.cfg.Join); err == nil && n > 0 {
			s.log.Info("joined gossip", "contacted", n)
			return
		} else if err != nil {
			s.log.Debug("join failed, retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
