package apitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

// Cluster is a control plane of n nodes: raftstore plus an apiserver on each.
type Cluster struct {
	T       testing.TB
	Raft    *rafttest.Cluster
	PKI     *PKI
	URLs    []string
	Servers []*apiserver.Server
	Admin   *Cert
	// KubeletClient is the apiservers' client certificate toward node agents; agents in
	// tests verify it with PKI.Pool.
	KubeletClient *Cert
	Dir           string
	cancel        context.CancelFunc
	wg            sync.WaitGroup
}

// Options shape a test control plane.
type Options struct {
	Tokens      map[string]apiserver.UserInfo
	ServiceCIDR string // default 10.96.0.0/16
	// HandshakeTimeout is the servers' (default: apiserver's 30s).
	HandshakeTimeout time.Duration
	// RequestTimeout and MaxMutatingRequestsInflight are the servers' (default: apiserver's).
	RequestTimeout              time.Duration
	MaxMutatingRequestsInflight int
}

// Start starts n nodes and waits until every apiserver answers and the bootstrap
// namespaces exist. Everything stops when the test ends.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{T: t, Raft: rafttest.New(t, n, rafttest.Options{}), PKI: NewPKI(t), Dir: t.TempDir()}
	c.Admin = c.PKI.ClientCert(t, "kubernetes-admin", "system:masters")
	serving := c.PKI.ServerCert(t)
	c.KubeletClient = c.PKI.ClientCert(t, "kube-apiserver-kubelet-client", "system:masters")
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	t.Cleanup(c.Stop)
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("APITEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range c.Raft.Nodes {
		s, err := apiserver.New(apiserver.Config{
			Store: node.Store(), ServingCert: serving.TLS, ClientCA: c.PKI.Pool, Tokens: opts.Tokens,
			Logger:            logger.With("node", node.ID),
			KubeletClientCert: c.KubeletClient.TLS, KubeletCA: c.PKI.Pool,
			ServiceCIDR: opts.ServiceCIDR, ServiceAccountKey: saKey, HandshakeTimeout: opts.HandshakeTimeout,
			RequestTimeout: opts.RequestTimeout, MaxMutatingRequestsInflight: opts.MaxMutatingRequestsInflight,
		})
		if err != nil {
			t.Fatalf("apiserver.New: %v", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.Servers = append(c.Servers, s)
		c.URLs = append(c.URLs, "https://"+ln.Addr().String())
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := s.Serve(ctx, ln); err != nil {
				t.Errorf("Serve: %v", err)
			}
		}()
	}
	cs := c.Client(0)
	rafttest.Eventually(t, 20*time.Second, func() error {
		for _, ns := range []string{"default", "kube-system", "kube-node-lease"} {
			if _, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1GetOptions); err != nil {
				return err
			}
		}
		return nil
	})
	return c
}

// Stop stops the apiservers (the raft cluster stops with the test).
func (c *Cluster) Stop() {
	c.cancel()
	c.wg.Wait()
}

// RESTConfig is an admin client config for node i.
func (c *Cluster) RESTConfig(i int) *rest.Config {
	return c.RESTConfigFor(i, c.Admin)
}

// RESTConfigFor is a client config for node i authenticating with cert.
func (c *Cluster) RESTConfigFor(i int, cert *Cert) *rest.Config {
	return &rest.Config{
		Host: c.URLs[i],
		TLSClientConfig: rest.TLSClientConfig{
			CAData: c.PKI.CAPEM, CertData: cert.CertPEM, KeyData: cert.KeyPEM,
		},
		QPS: 1000, Burst: 1000,
	}
}

// Client is an admin clientset for node i.
func (c *Cluster) Client(i int) *kubernetes.Clientset {
	cs, err := kubernetes.NewForConfig(c.RESTConfig(i))
	if err != nil {
		c.T.Fatal(err)
	}
	return cs
}

// Kubeconfig writes an admin kubeconfig for node i and returns its path.
func (c *Cluster) Kubeconfig(i int) string {
	dir := filepath.Join(c.Dir, fmt.Sprintf("node%d", i))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.T.Fatal(err)
	}
	files := map[string][]byte{"ca.crt": c.PKI.CAPEM, "admin.crt": c.Admin.CertPEM, "admin.key": c.Admin.KeyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			c.T.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: skiff
  context: {cluster: skiff, user: admin, namespace: default}
current-context: skiff
`, c.URLs[i], filepath.Join(dir, "ca.crt"), filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key"))
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		c.T.Fatal(err)
	}
	return path
}
