package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/skiff-dev/skiff/raftstore"
)

// ServersGroup is the certificate group (Organization) of control-plane servers; only its
// members may speak Raft or forward writes.
const ServersGroup = "skiff:servers"

// tlsLayer is raftstore's network layer with mutual TLS: both ends present a certificate of
// the cluster CA in ServersGroup.
type tlsLayer struct {
	net.Listener
	cfg *tls.Config
}

var _ raftstore.Layer = (*tlsLayer)(nil)

func newTLSLayer(ln net.Listener, keys *Keys, cert tls.Certificate) *tlsLayer {
	pool := keys.CAPool()
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("cluster: peer sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("cluster: peer certificate: %w", err)
		}
		if !slices.Contains(leaf.Subject.Organization, ServersGroup) {
			return fmt.Errorf("cluster: peer %q is not a server", leaf.Subject.CommonName)
		}
		return nil
	}
	return &tlsLayer{Listener: ln, cfg: &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert, // verified below, with the group check
		// Peers are reached by address, not name: the chain and group are what count.
		InsecureSkipVerify: true,
		VerifyConnection:   verify,
		MinVersion:         tls.VersionTLS13,
	}}
}

func (l *tlsLayer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.cfg), nil
}

func (l *tlsLayer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d := tls.Dialer{Config: l.cfg}
	return d.DialContext(ctx, "tcp", addr)
}
