package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/cluster"
	"github.com/skiff-dev/skiff/nodeagent"
	"github.com/skiff-dev/skiff/nodeagent/image"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// TestImageRef is the test image's name on every agent of a skiff up cluster.
const TestImageRef = "skiff.local/testimage:latest"

func newAgentCmd() *cobra.Command {
	var (
		cfg          nodeagent.Config
		kubeconfig   string
		dataDir      string
		runtimeName  string
		cgroupRoot   string
		nodeIP       string
		testImageBin string
		logLevel     string
		server       string
		token        string
		tokenFile    string
		gossipAddr   string
		gossipAdv    string
		join         []string
		pprofAddr    string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node agent (the kubelet role): registers the node and runs its pods",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tokenFile != "" {
				if err := readToken(&token, tokenFile); err != nil {
					return err
				}
			}
			seedsFile := filepath.Join(dataDir, "agent", "gossip-seeds")
			if kubeconfig == "" {
				if server == "" || token == "" {
					return fmt.Errorf("give --kubeconfig, or --server and --token to join")
				}
				var err error
				if kubeconfig, err = joinOnce(cmd.Context(), filepath.Join(dataDir, "agent", "kubeconfig"), seedsFile, server, token, cfg.NodeName); err != nil {
					return err
				}
			}
			rc, err := cluster.RestConfig(kubeconfig, "")
			if err != nil {
				return err
			}
			servers, err := cluster.KubeconfigServers(kubeconfig)
			if err != nil {
				return err
			}
			cfg.Logger = newLogger(logLevel)
			// The agent reaches the API through whichever server is alive: those its
			// kubeconfig names, and those gossip reports once it has joined.
			pool := cluster.NewServerPool(servers)
			rc = cluster.PreferProtobuf(pool.RestConfig(rc))
			// The kubelet's sustained rate (--kube-api-qps 50), not client-go's 5, which
			// throttles a node starting many pods at once. The burst is larger than the
			// kubelet's 100: a pod start costs this agent two requests (its service account
			// token, its Running status), so 250 lets a full node of 110 pods start at
			// once without each pod waiting its turn at 50 a second (with 100, 100 pods
			// needing 300 requests took at least 4 s; see bench/README.md, bench: pods).
			if rc.QPS == 0 {
				rc.QPS, rc.Burst = 50, 250
			}
			if token != "" {
				adv := gossipAdv
				if host, port, err := net.SplitHostPort(gossipAddr); err == nil && adv == "" && nodeIP != "" && (host == "" || net.ParseIP(host).IsUnspecified()) {
					adv = net.JoinHostPort(nodeIP, port)
				}
				if _, err := cluster.StartAgentMember(cmd.Context(), cluster.AgentMemberConfig{
					Name: cfg.NodeName, AgentToken: token, BindAddr: gossipAddr, Advertise: adv, Join: join,
					SeedsFile: seedsFile, Pool: pool, Logger: cfg.Logger.With("component", "gossip"),
				}); err != nil {
					return err
				}
			}
			if cfg.Client, err = kubernetes.NewForConfig(rc); err != nil {
				return err
			}
			cfg.RestConfig = rc
			if cfg.TLSConfig, cfg.Authorize, err = endpointSecurity(rc.TLSClientConfig.CAData); err != nil {
				return err
			}
			cfg.DataDir = filepath.Join(dataDir, "agent")
			if nodeIP != "" {
				if cfg.NodeIP = net.ParseIP(nodeIP); cfg.NodeIP == nil {
					return fmt.Errorf("--node-ip %q is not an IP", nodeIP)
				}
			}
			switch runtimeName {
			case "hollow":
				cfg.Runtime = runtime.NewHollow()
			case "libcontainer":
				if os.Geteuid() != 0 {
					return fmt.Errorf("the libcontainer runtime needs root (or use --runtime hollow)")
				}
				lc, err := runtime.NewLibcontainer(runtime.Config{
					Root:       filepath.Join(cfg.DataDir, "runtime"),
					CgroupRoot: cmp.Or(cgroupRoot, "skiff/"+cfg.NodeName),
					Logger:     cfg.Logger,
				})
				if err != nil {
					return err
				}
				cfg.Runtime = lc
				if cfg.Images, err = image.NewStore(filepath.Join(cfg.DataDir, "images")); err != nil {
					return err
				}
				if testImageBin != "" {
					addr, err := serveTestImage(cmd.Context(), testImageBin)
					if err != nil {
						return err
					}
					cfg.RegistryMirrors = map[string]string{"skiff.local": addr}
				}
			default:
				return fmt.Errorf("--runtime must be libcontainer or hollow, not %q", runtimeName)
			}
			a, err := nodeagent.New(cfg)
			if err != nil {
				return err
			}
			if pprofAddr != "" {
				if err := serveAgentPprof(cmd.Context(), pprofAddr, cfg.Logger); err != nil {
					return err
				}
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeName, "name", hostname(), "this node's name")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig with this node's identity (system:node:<name>); or join with --server and --token")
	f.StringVar(&server, "server", "", "a server's API URL to join through (with --token)")
	f.StringVar(&token, "token", "", "the agent join token (<data-dir>/tls/agent-token on any server); also joins gossip")
	f.StringVar(&tokenFile, "token-file", "", "file holding the agent token")
	f.StringVar(&gossipAddr, "gossip-addr", "0.0.0.0:7002", "address for gossip membership (with a token)")
	f.StringVar(&gossipAdv, "gossip-advertise", "", "gossip address others use (default: the node IP and the --gossip-addr port)")
	f.StringSliceVar(&join, "join", nil, "a server's gossip address (repeatable); the join answer and earlier runs add more")
	f.StringVar(&dataDir, "data-dir", "/var/lib/skiff", "data directory (agent/ holds images, containers, pod logs)")
	f.StringVar(&runtimeName, "runtime", "libcontainer", "libcontainer, or hollow to simulate a node")
	f.StringVar(&cgroupRoot, "cgroup-root", "", "the cgroup every pod goes below (default skiff/<name>: several agents may share a machine)")
	f.StringVar(&cfg.ListenAddr, "listen", ":10250", "address of the agent's HTTPS endpoint (logs, exec)")
	f.StringVar(&nodeIP, "node-ip", "", "the node's InternalIP (default: the address of the default route's interface)")
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "this node's pod CIDR, when no allocator sets spec.podCIDR")
	f.BoolVar(&cfg.ServiceProxy, "service-proxy", true, "program this node's nftables for Services (the kube-proxy role; libcontainer runtime only)")
	f.BoolVar(&cfg.ClusterDNS, "cluster-dns", true, "answer pods' DNS for the cluster domain on their gateway address (libcontainer runtime only)")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "the pods' CIDR across the cluster: traffic to Services from outside it, and pods' traffic leaving it, is masqueraded")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry host:port to pull from over plain HTTP (repeatable)")
	f.StringVar(&cfg.PodManifestPath, "pod-manifest-path", "", "directory of static pod manifests")
	f.StringVar(&cfg.SeccompProfileRoot, "seccomp-profile-root", "", "directory of the seccomp profiles pods name with type Localhost (default <data-dir>/agent/seccomp)")
	f.StringVar(&testImageBin, "test-image-binary", "", "a static testimage binary to serve as "+TestImageRef+" from an in-process registry (for machines with no registry)")
	f.IntVar(&cfg.ImageGC.HighPercent, "image-gc-high-threshold", 85, "disk usage percent at which unused images are deleted")
	f.IntVar(&cfg.ImageGC.LowPercent, "image-gc-low-threshold", 80, "disk usage percent image GC frees down to")
	f.DurationVar(&cfg.ImageGC.MinAge, "image-minimum-gc-age", 2*time.Minute, "an unused image is kept at least this long after its last use")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&pprofAddr, "pprof-addr", "", "serve net/http/pprof on this address, with block and mutex profiling on (off when empty)")
	return cmd
}

// serveAgentPprof serves pprof until ctx ends. Block and mutex profiles are turned on with
// it, as they are what shows pods waiting on one another (a lock held across a slow
// syscall, a bounded pool); they cost too much to keep on otherwise.
func serveAgentPprof(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	goruntime.SetBlockProfileRate(int(100 * time.Microsecond))
	goruntime.SetMutexProfileFraction(10)
	srv := &http.Server{Handler: pprofMux()}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server", "err", err)
		}
	}()
	log.Info("serving pprof", "addr", ln.Addr().String())
	return nil
}

// joinOnce returns the kubeconfig from an earlier join, or joins now and writes it.
// The servers' gossip addresses in the answer seed this agent's gossip.
func joinOnce(ctx context.Context, path, seedsFile, server, token, name string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	j, err := cluster.Join(ctx, server, token, name)
	if err != nil {
		return "", err
	}
	if len(j.GossipSeeds) > 0 {
		if err := os.MkdirAll(filepath.Dir(seedsFile), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(seedsFile, []byte(strings.Join(j.GossipSeeds, "\n")+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	return path, cluster.WriteNodeKubeconfig(path, server, name, j)
}

// serveTestImage builds the test image from its binary and serves it from an in-process
// registry (go-containerregistry's) on loopback until ctx ends, so that pods on a machine
// with no registry pull skiff.local/testimage:latest like any image. It returns the
// registry's address, which stands in for skiff.local.
func serveTestImage(ctx context.Context, binary string) (string, error) {
	img, err := image.BuildTestImage(binary)
	if err != nil {
		return "", fmt.Errorf("test image: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { srv.Close() })
	addr := ln.Addr().String()
	ref, err := name.ParseReference(addr+"/testimage:latest", name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("test image: push to the in-process registry: %w", err)
	}
	return addr, nil
}

// endpointSecurity limits the agent's logs and exec endpoint to clients with a certificate
// of the cluster CA in group system:masters: the apiserver's proxy (as kube-apiserver's
// kubelet client certificate is) and cluster admins. Anyone else who can reach the port
// gets nothing.
func endpointSecurity(caPEM []byte) (*tls.Config, func(*nodeagent.RequestInfo) error, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("the kubeconfig holds no CA certificate to verify the agent's clients with")
	}
	cfg := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	authorize := func(r *nodeagent.RequestInfo) error {
		if r.Request.TLS == nil || len(r.Request.TLS.VerifiedChains) == 0 {
			return errors.New("no verified client certificate")
		}
		if !slices.Contains(r.Request.TLS.VerifiedChains[0][0].Subject.Organization, "system:masters") {
			return fmt.Errorf("%s may not use the node's %s endpoint", r.Request.TLS.VerifiedChains[0][0].Subject.CommonName, r.Verb)
		}
		return nil
	}
	return cfg, authorize, nil
}
