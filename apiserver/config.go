package apiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-dev/skiff/raftstore"
)

// Store is what the apiserver needs from the replicated keyspace; *raftstore.Store
// satisfies it.
type Store interface {
	Get(ctx context.Context, key string, opts raftstore.ReadOptions) (raftstore.KV, error)
	List(ctx context.Context, prefix string, opts raftstore.ListOptions) (raftstore.ListResult, error)
	Txn(ctx context.Context, ops ...raftstore.Op) (*raftstore.TxnResult, error)
	Watch(ctx context.Context, prefix string, from int64) (*raftstore.Watcher, error)
	WaitRevision(ctx context.Context, rev int64) error
	Leader() (id, addr string)
}

var _ Store = (*raftstore.Store)(nil)

// UserInfo is an authenticated identity.
type UserInfo struct {
	Name   string
	UID    string
	Groups []string
}

// Config configures a Server. Only Store and ServingCert are required.
type Config struct {
	Store       Store
	ServingCert tls.Certificate
	// ClientCA verifies x509 client certificates: CN is the user, O the groups.
	ClientCA *x509.CertPool
	// Tokens are static bearer tokens.
	Tokens  map[string]UserInfo
	Logger  *slog.Logger
	Metrics prometheus.Registerer // may be nil

	// MaxBodyBytes bounds a request body (default 3 MiB, as kube-apiserver).
	MaxBodyBytes int64
	// BookmarkInterval is how often a watch that asked for bookmarks gets one (default 30s).
	BookmarkInterval time.Duration
	// WatchTimeout is the longest a watch without timeoutSeconds stays open; each watch gets
	// a random duration between it and twice it, as kube-apiserver (default 30m).
	WatchTimeout time.Duration
	// RequestTimeout bounds every request that is not long-running (watch, exec, attach,
	// port-forward, proxy, followed logs); a client's ?timeout= may shorten it (default 60s,
	// as kube-apiserver's --request-timeout). A write that hangs on a lost leader ends with
	// 504 instead of holding its caller forever.
	RequestTimeout time.Duration
	// HandshakeTimeout is how long a new connection has for its TLS handshake and a
	// request for its headers (net/http's ReadHeaderTimeout; default 30s). Once the
	// handshake is done it must not bound the connection: long-lived watch connections
	// outlive it by hours. Negative: no limit.
	HandshakeTimeout time.Duration
	// MaxRequestsInflight and MaxMutatingRequestsInflight bound the reads and the writes a
	// server works on at once (kube-apiserver's flags of those names; default 400 and 200;
	// negative: no bound). Further requests wait up to a quarter of RequestTimeout, then get
	// 429. Watches and other long-running requests, and system:masters, are not counted.
	MaxRequestsInflight, MaxMutatingRequestsInflight int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// SkipBootstrap leaves out the default namespaces and RBAC roles created at start.
	SkipBootstrap bool
	// KubeletClientCert is the apiserver's client certificate toward node agents, for
	// pods/log, exec and portforward (kube-apiserver's --kubelet-client-certificate).
	KubeletClientCert tls.Certificate
	// KubeletCA verifies agents' serving certificates; nil skips verification, as
	// kube-apiserver does without --kubelet-certificate-authority (agents may serve
	// self-signed certificates).
	KubeletCA *x509.CertPool
	// Unauthenticated are extra handlers by path (matched with and below it), served before
	// authentication: the cluster's agent join endpoint, whose callers have no identity yet
	// and prove themselves with the join token instead.
	Unauthenticated map[string]http.Handler
	// ServiceCIDR is where Services' cluster IPs come from (default 10.96.0.0/16, as
	// kube-apiserver's --service-cluster-ip-range); its first address is the kubernetes
	// Service's. Every server of a cluster must be given the same.
	ServiceCIDR string
	// ServiceAccountKey signs and verifies service account tokens; every server of a cluster
	// must have the same. Nil: no tokens are issued or accepted.
	ServiceAccountKey *ecdsa.PrivateKey
	// NodePortMin and NodePortMax bound node ports (default 30000-32767).
	NodePortMin, NodePortMax int32
}

func (c *Config) setDefaults() error {
	if c.Store == nil {
		return errors.New("apiserver: Config.Store is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 3 << 20
	}
	if c.BookmarkInterval == 0 {
		c.BookmarkInterval = 30 * time.Second
	}
	if c.WatchTimeout == 0 {
		c.WatchTimeout = 30 * time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Minute
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.MaxRequestsInflight == 0 {
		c.MaxRequestsInflight = 400
	}
	if c.MaxMutatingRequestsInflight == 0 {
		c.MaxMutatingRequestsInflight = 200
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.96.0.0/16"
	}
	if c.NodePortMin == 0 && c.NodePortMax == 0 {
		c.NodePortMin, c.NodePortMax = 30000, 32767
	}
	return nil
}
