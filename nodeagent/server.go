package nodeagent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// The agent's HTTPS endpoint serves the kubelet's paths that the apiserver
// proxies pods/log and pods/exec to:
//
//	GET      /healthz
//	GET      /containerLogs/<namespace>/<pod>/<container>?follow&tailLines&...
//	GET|POST /exec/<namespace>/<pod>/<container>?command=...&stdin=1&stdout=1&stderr=1&tty=1
//	GET|POST /portForward/<namespace>/<pod>
//
// Exec speaks SPDY (v4 down to v1 channel protocols) and the websocket v4
// protocols, as the kubelet does; the apiserver translates kubectl's
// websocket v5.channel.k8s.io to SPDY, as kube-apiserver does.

// RequestInfo describes an endpoint request for Config.Authorize.
type RequestInfo struct {
	// Verb is "logs", "exec" or "portforward".
	Verb                      string
	Namespace, Pod, Container string
	Request                   *http.Request
}

type server struct {
	a   *Agent
	srv *http.Server
}

func newServer(a *Agent) *server {
	s := &server{a: a}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.logs)
	mux.HandleFunc("GET /exec/{ns}/{pod}/{container}", s.exec)
	mux.HandleFunc("POST /exec/{ns}/{pod}/{container}", s.exec)
	mux.HandleFunc("GET /portForward/{ns}/{pod}", s.portForward)
	mux.HandleFunc("POST /portForward/{ns}/{pod}", s.portForward)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	return s
}

// listen opens the endpoint's socket.
func (s *server) listen() (net.Listener, error) {
	cfg := s.a.cfg.TLSConfig
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	cfg = cfg.Clone()
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		// The kubelet without --tls-cert-file serves a self-signed certificate too; client
		// verification (ClientCAs) may still be configured.
		cert, err := selfSignedCert(s.a.cfg.NodeName, s.a.nodeIP())
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	// SPDY needs HTTP/1.1 upgrades.
	cfg.NextProtos = []string{"http/1.1"}
	ln, err := net.Listen("tcp", s.a.cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("agent endpoint: %w", err)
	}
	return tls.NewListener(ln, cfg), nil
}

// serve answers on ln until ctx ends.
func (s *server) serve(ctx context.Context, ln net.Listener) error {
	s.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	s.srv.Close() // hijacked exec streams are not closed by Shutdown
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *server) authorize(w http.ResponseWriter, r *http.Request, verb string) (RequestInfo, bool) {
	ri := RequestInfo{Verb: verb, Namespace: r.PathValue("ns"), Pod: r.PathValue("pod"), Container: r.PathValue("container"), Request: r}
	if s.a.cfg.Authorize != nil {
		if err := s.a.cfg.Authorize(&ri); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return ri, false
		}
	}
	return ri, true
}

func (s *server) logs(w http.ResponseWriter, r *http.Request) {
	ri, ok := s.authorize(w, r, "logs")
	if !ok {
		return
	}
	s.a.serveLogs(w, r, ri.Namespace, ri.Pod, ri.Container)
}

func (s *server) exec(w http.ResponseWriter, r *http.Request) {
	ri, ok := s.authorize(w, r, "exec")
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "command is required", http.StatusBadRequest)
		return
	}
	// Fail before upgrading when the container cannot take an exec, so the
	// client gets a readable error.
	if _, err := s.a.execTarget(r.Context(), ri.Namespace, ri.Pod, ri.Container); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(w, r, &executor{a: s.a, ns: ri.Namespace}, ri.Pod, "", ri.Container, cmd, opts,
		4*time.Hour, 30*time.Second, remotecommandconsts.SupportedStreamingProtocols)
}

// execTarget is the running container an exec goes to.
func (a *Agent) execTarget(ctx context.Context, ns, podName, container string) (string, error) {
	pod := a.pods.findPod(ns, podName)
	if pod == nil {
		return "", fmt.Errorf("pod %s/%s not found on node %s", ns, podName, a.cfg.NodeName)
	}
	if container == "" && len(pod.Spec.Containers) > 0 {
		container = pod.Spec.Containers[0].Name
	}
	list, err := a.cfg.Runtime.List(ctx)
	if err != nil {
		return "", err
	}
	r := groupRecords(pod.UID, list).latest(container)
	if r == nil || !r.running() {
		return "", fmt.Errorf("container %s is not running in pod %s/%s", container, ns, podName)
	}
	return r.ID, nil
}

// executor runs exec requests through the runtime.
type executor struct {
	a  *Agent
	ns string
}

// ExecInContainer implements remotecommand.Executor. A TTY is not
// allocated (the runtime has no console support yet): with tty the command
// runs with its output on the single stream the client reads.
func (e *executor) ExecInContainer(ctx context.Context, podName, _ string, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, timeout time.Duration) error {
	id, err := e.a.execTarget(ctx, e.ns, podName, container)
	if err != nil {
		return err
	}
	go func() {
		for range resize { // drained: there is no terminal to resize
		}
	}()
	spec := runtime.ExecSpec{Args: cmd}
	if in != nil {
		spec.Stdin = in
	}
	if out != nil {
		spec.Stdout = out
	}
	switch {
	case errw != nil:
		spec.Stderr = errw
	case tty && out != nil:
		spec.Stderr = out
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	code, err := e.a.cfg.Runtime.Exec(ctx, id, spec)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// selfSignedCert makes a certificate for the endpoint when none is given,
// as the kubelet does without --tls-cert-file.
func selfSignedCert(node string, ip net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node + "@" + fmt.Sprint(time.Now().Unix())},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{node, strings.ToLower(node)},
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip, net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
