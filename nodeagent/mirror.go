package nodeagent

import (
	"net/http"
)

// mirrorTransport sends a registry's traffic to a mirror over plain HTTP, as containerd's
// registry mirrors do. skiff up uses it to serve skiff.local, the test image's registry,
// from an in-process registry on a machine that reaches no registry.
type mirrorTransport struct {
	mirrors map[string]string // registry host -> mirror host:port
	next    http.RoundTripper
}

func (t *mirrorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if m, ok := t.mirrors[req.URL.Host]; ok {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host, req.Host = "http", m, m
	}
	return t.next.RoundTrip(req)
}
