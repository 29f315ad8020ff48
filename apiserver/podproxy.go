package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-dev/skiff/raftstore"
)

// kubeletDefaultPort is the kubelet's port when a Node does not publish one.
const kubeletDefaultPort = 10250

// proxyToNode serves pods/log, pods/exec and pods/portforward as kube-apiserver does: it
// finds the pod's node, and proxies to the agent's kubelet paths over HTTPS with the
// apiserver's own client certificate. Upgrades (SPDY/3.1, websocket) pass through:
// httputil.ReverseProxy switches to a raw byte copy on 101 Switching Protocols.
func (s *Server) proxyToNode(w http.ResponseWriter, r *http.Request, q *request) {
	// A websocket exec or port-forward is a GET, but it can write into the container: as
	// kube-apiserver (AuthorizePodWebsocketUpgradeCreatePermission), it also needs create.
	if q.ri.Verb == "get" && (q.ri.Subresource == "exec" || q.ri.Subresource == "portforward") {
		create := *q.ri
		create.Verb = "create"
		ok, reason, err := s.authz.allowed(r.Context(), q.user, &create)
		if err != nil {
			writeError(w, err, q.gr(), q.ri.Name)
			return
		}
		if !ok {
			writeStatus(w, toStatus(forbidden(q.user, &create, reason), q.gr(), q.ri.Name))
			return
		}
	}
	target, err := s.nodeLocation(r.Context(), q, r.URL.Query())
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			// The caller's credentials are for the apiserver, never for the agent.
			pr.Out.Header.Del("Authorization")
			for k := range pr.Out.Header {
				if strings.HasPrefix(k, "Impersonate-") {
					pr.Out.Header.Del(k)
				}
			}
		},
		Transport:     s.kubeletTransport(),
		FlushInterval: -1, // logs -f: every line as soon as the agent writes it
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			writeError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("error reaching the node agent at %s: %v", target.Host, err)), q.gr(), q.ri.Name)
		},
	}
	p.ServeHTTP(w, r)
}

// kubeletTransport dials agents. One per server: it keeps connections to agents alive.
func (s *Server) kubeletTransport() http.RoundTripper {
	s.kubeletOnce.Do(func() {
		tlsCfg := &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    s.cfg.KubeletCA,
			// SPDY and websocket upgrades are HTTP/1.1 only.
			NextProtos: []string{"http/1.1"},
			// Without a CA, as kube-apiserver without --kubelet-certificate-authority.
			InsecureSkipVerify: s.cfg.KubeletCA == nil, //nolint:gosec
		}
		if len(s.cfg.KubeletClientCert.Certificate) > 0 {
			tlsCfg.Certificates = []tls.Certificate{s.cfg.KubeletClientCert}
		}
		s.kubeletRT = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		}
	})
	return s.kubeletRT
}

// nodeLocation is the agent URL for a pod subresource request, with the kubelet's query
// parameters built from the client's (PodLogOptions, PodExecOptions, PodPortForwardOptions).
func (s *Server) nodeLocation(ctx context.Context, q *request, in url.Values) (*url.URL, error) {
	obj, _, err := s.objs.get(ctx, q.rs, q.ns, q.ri.Name, false)
	if err != nil {
		return nil, err
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	host, err := s.nodeAddress(ctx, pod.Spec.NodeName)
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: "https", Host: host}
	out := url.Values{}
	copyParams := func(names ...string) {
		for _, n := range names {
			if vs, ok := in[n]; ok {
				out[n] = vs
			}
		}
	}
	switch q.ri.Subresource {
	case "log":
		c, err := containerFor(pod, in.Get("container"))
		if err != nil {
			return nil, err
		}
		u.Path = "/containerLogs/" + pod.Namespace + "/" + pod.Name + "/" + c
		copyParams("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes")
	case "exec":
		c, err := containerFor(pod, in.Get("container"))
		if err != nil {
			return nil, err
		}
		if len(in["command"]) == 0 {
			return nil, apierrors.NewBadRequest("you must specify at least 1 command")
		}
		u.Path = "/exec/" + pod.Namespace + "/" + pod.Name + "/" + c
		out["command"] = in["command"]
		// The kubelet reads input/output/error/tty (k8s.io/api ExecStdinParam...); the
		// client's stdin/stdout/stderr names are passed too, for agents that read those.
		for client, kubelet := range map[string]string{"stdin": "input", "stdout": "output", "stderr": "error", "tty": "tty"} {
			if b, _ := strconv.ParseBool(in.Get(client)); b {
				out.Set(kubelet, "1")
				out.Set(client, "1")
			}
		}
	case "portforward":
		u.Path = "/portForward/" + pod.Namespace + "/" + pod.Name
		copyParams("ports")
	}
	u.RawQuery = out.Encode()
	return u, nil
}

// nodeAddress is host:port of a node's agent: its InternalIP (else the first address) and
// its published kubelet port.
func (s *Server) nodeAddress(ctx context.Context, name string) (string, error) {
	rs := s.reg.lookup("", "v1", "nodes")
	obj, _, err := s.objs.get(ctx, rs, "", name, true)
	if err != nil {
		if errors.Is(err, raftstore.ErrNotFound) {
			return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %q of the pod is not registered", name))
		}
		return "", err
	}
	node := obj.(*corev1.Node)
	ip := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
			break
		}
	}
	if ip == "" && len(node.Status.Addresses) > 0 {
		ip = node.Status.Addresses[0].Address
	}
	if ip == "" {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %q has no address", name))
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = kubeletDefaultPort
	}
	return net.JoinHostPort(ip, strconv.Itoa(port)), nil
}

// containerFor picks the container a request names, or the only one, as kube-apiserver.
func containerFor(pod *corev1.Pod, name string) (string, error) {
	if name == "" {
		if len(pod.Spec.Containers) == 1 {
			return pod.Spec.Containers[0].Name, nil
		}
		var names []string
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
		}
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names))
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}
