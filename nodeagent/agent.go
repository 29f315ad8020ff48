// Package nodeagent is skiff's kubelet: it registers its Node, heartbeats
// through a Lease and Node status, and turns the pods bound to its node into
// containers through a runtime.Runtime, reporting their status back through
// the Kubernetes API. It speaks only the API (client-go), like every other
// client of the cluster.
package nodeagent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/nodeagent/image"
	"github.com/skiff-dev/skiff/nodeagent/network"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// Config configures an Agent. NodeName, Client, Runtime and DataDir are
// required; Images is required unless the runtime is hollow.
type Config struct {
	NodeName string
	// Client is authenticated as system:node:<NodeName>.
	Client     kubernetes.Interface
	RestConfig *rest.Config // optional; not needed by the agent itself
	Runtime    runtime.Runtime
	// Images is nil for a hollow runtime: its containers need no image.
	Images *image.Store
	// DataDir is <data-dir>/agent: pod volumes, logs and network state.
	DataDir string

	// NodeIP is the node's InternalIP; default: the address of the
	// interface holding the default route.
	NodeIP net.IP
	// Labels are added to the well-known node labels.
	Labels map[string]string
	// Capacity overrides detected capacity (cpu, memory, pods,
	// ephemeral-storage); Reserved is subtracted from it for allocatable.
	Capacity map[string]resource.Quantity
	Reserved map[string]resource.Quantity
	// MaxPods defaults to 110, as the kubelet's.
	MaxPods int

	// ListenAddr is where the agent's HTTPS endpoint (logs, exec) listens,
	// default ":10250"; "127.0.0.1:0" picks a port (tests). TLSConfig
	// serves it; nil serves with a self-signed certificate, as the
	// kubelet does without --tls-cert-file.
	ListenAddr string
	TLSConfig  *tls.Config
	// Authorize, if set, decides whether an endpoint request may proceed;
	// nil allows any client that completed TLS (see server.go).
	Authorize func(r *RequestInfo) error

	// PodCIDR is set on the Node at registration when the Node has none,
	// for clusters without a CIDR allocator. Pod networking uses the
	// Node's spec.podCIDR.
	PodCIDR string
	// Network, if set, gives pods their network; nil with a libcontainer
	// runtime means each pod gets a network namespace with loopback only.
	Network *network.Manager

	// ServiceProxy programs the node's nftables for Services (the
	// kube-proxy role, package proxy); ClusterDNS answers the pods' DNS on
	// their gateway address (package dns). Both need a real runtime and
	// are ignored with a hollow one.
	ServiceProxy bool
	ClusterDNS   bool
	// ClusterDomain is the DNS domain of the cluster, default
	// "cluster.local"; ClusterCIDR is the pods' CIDR (default
	// "10.244.0.0/16"): traffic to a Service from outside it is
	// masqueraded, and pods' traffic to outside it too.
	ClusterDomain string
	ClusterCIDR   string

	// InsecureRegistries are registry hosts ("host:port") pulled from over
	// plain HTTP.
	InsecureRegistries []string
	// RegistryMirrors sends pulls from a registry host to a mirror host:port over plain
	// HTTP (for example skiff.local to the agent's in-process test-image registry).
	RegistryMirrors map[string]string

	// SeccompProfileRoot holds the profiles pods name with a Localhost
	// seccompProfile (default <DataDir>/seccomp, as the kubelet's
	// <root-dir>/seccomp).
	SeccompProfileRoot string

	// PodManifestPath is a directory of static pod manifests, read every
	// StaticPodCheckInterval (default 20 s, the kubelet's fileCheckFrequency).
	PodManifestPath        string
	StaticPodCheckInterval time.Duration

	// LogMaxBytes and LogMaxFiles bound each container's log (default 10
	// MiB and 5 files, the kubelet's containerLogMaxSize/MaxFiles).
	LogMaxBytes int64
	LogMaxFiles int

	// LeaseDuration is the node Lease's duration (default 40 s); the lease
	// is renewed every quarter of it (10 s), as the kubelet does.
	LeaseDuration time.Duration
	// StatusUpdateFrequency is how often node conditions are checked (10 s);
	// StatusReportFrequency how often an unchanged status is still posted
	// (5 min).
	StatusUpdateFrequency time.Duration
	StatusReportFrequency time.Duration
	// HousekeepingInterval is how often containers of vanished pods are
	// looked for (default 10 s).
	HousekeepingInterval time.Duration
	// BackoffInitial and BackoffMax shape crash and pull back-off (10 s to
	// 5 min, as Kubernetes').
	BackoffInitial time.Duration
	BackoffMax     time.Duration

	// ImageGC is the image garbage collection policy (default: the kubelet's 85% high,
	// 80% low, 2 min minimum age), applied every ImageGCPeriod (default 5 min).
	ImageGC       image.GCPolicy
	ImageGCPeriod time.Duration

	Logger *slog.Logger
	// Version is reported as the node's kubeletVersion.
	Version string
}

func (c *Config) setDefaults() error {
	switch {
	case c.NodeName == "":
		return errors.New("nodeagent: Config.NodeName is required")
	case c.Client == nil:
		return errors.New("nodeagent: Config.Client is required")
	case c.Runtime == nil:
		return errors.New("nodeagent: Config.Runtime is required")
	case c.DataDir == "":
		return errors.New("nodeagent: Config.DataDir is required")
	}
	if _, hollow := c.Runtime.(*runtime.Hollow); !hollow && c.Images == nil {
		return errors.New("nodeagent: Config.Images is required with a real runtime")
	}
	if c.ImageGC == (image.GCPolicy{}) {
		c.ImageGC = image.GCPolicy{HighPercent: 85, LowPercent: 80, MinAge: 2 * time.Minute}
	}
	if c.ImageGCPeriod == 0 {
		c.ImageGCPeriod = 5 * time.Minute
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	if c.ListenAddr == "" {
		c.ListenAddr = ":10250"
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = 10 << 20
	}
	if c.LogMaxFiles == 0 {
		c.LogMaxFiles = 5
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 40 * time.Second
	}
	if c.StatusUpdateFrequency == 0 {
		c.StatusUpdateFrequency = 10 * time.Second
	}
	if c.StatusReportFrequency == 0 {
		c.StatusReportFrequency = 5 * time.Minute
	}
	if c.HousekeepingInterval == 0 {
		c.HousekeepingInterval = 10 * time.Second
	}
	if c.StaticPodCheckInterval == 0 {
		c.StaticPodCheckInterval = 20 * time.Second
	}
	if c.BackoffInitial == 0 {
		c.BackoffInitial = 10 * time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.244.0.0/16"
	}
	if c.Version == "" {
		c.Version = "v1.37.2-skiff"
	}
	return nil
}

// Agent is one node's agent.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	hollow bool

	pods   *podManager
	server *server
	logs   *logCollector
	net    *network.Manager // nil for a hollow runtime
	svc    *svcWatch        // nil for a hollow runtime
	pulls  singleflight.Group
	// objects caches the configMaps and secrets pods mount; tokens the pods' service
	// account tokens.
	objects *objectCache
	tokens  *tokenCache

	// port is the HTTPS endpoint's port once it listens, published in the
	// Node's daemonEndpoints.
	portMu sync.Mutex
	port   int
}

// New checks cfg and prepares an agent; it starts nothing.
func New(cfg Config) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("nodeagent data dir: %w", err)
	}
	cfg.DataDir = dir
	if cfg.SeccompProfileRoot == "" {
		cfg.SeccompProfileRoot = filepath.Join(dir, "seccomp")
	}
	for _, d := range []string{cfg.DataDir, podsDir(cfg.DataDir), logsDir(cfg.DataDir)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("nodeagent data dir: %w", err)
		}
	}
	_, hollow := cfg.Runtime.(*runtime.Hollow)
	a := &Agent{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName), hollow: hollow}
	a.pods = newPodManager(a)
	a.server = newServer(a)
	a.logs = newLogCollector(a)
	a.objects = newObjectCache(cfg.Client)
	a.tokens = newTokenCache()
	a.net = cfg.Network
	if a.net == nil && !hollow {
		if a.net, err = network.New(network.Config{StateDir: filepath.Join(cfg.DataDir, "network")}); err != nil {
			return nil, err
		}
	}
	if !hollow {
		a.svc = newSvcWatch(a)
	}
	return a, nil
}

// Run registers the node and runs it until ctx ends. Containers keep
// running after Run returns: a restarted agent takes them over.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ln, err := a.server.listen()
	if err != nil {
		return err
	}
	a.portMu.Lock()
	a.port = ln.Addr().(*net.TCPAddr).Port
	a.portMu.Unlock()

	if a.net != nil {
		// The kernel's host-port rules may be gone (a reboot, a flushed
		// ruleset) while the pods that asked for them still run.
		if err := a.net.SyncHostPorts(); err != nil {
			a.log.Warn("host ports", "err", err)
		}
	}
	a.logs.start(ctx)
	defer a.logs.wait()
	a.objects.start(ctx)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	run("endpoint", func(ctx context.Context) error { return a.server.serve(ctx, ln) })
	// Static pods run even while the API is unreachable, so they do not
	// wait for registration.
	run("pods", a.pods.run)
	run("node", a.runNode)
	run("routes", a.runRoutes)
	run("services", a.runServices)
	run("imagegc", a.runImageGC)
	wg.Wait()
	close(errc)
	return <-errc
}

// Port is the HTTPS endpoint's port, 0 until Run listens.
func (a *Agent) Port() int {
	a.portMu.Lock()
	defer a.portMu.Unlock()
	return a.port
}

func podsDir(dataDir string) string { return filepath.Join(dataDir, "pods") }
func logsDir(dataDir string) string { return filepath.Join(dataDir, "logs") }
