package nodeagent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/nodeagent/network"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// errUnsupportedProbe: a handler type the agent cannot run (gRPC).
var errUnsupportedProbe = errors.New("unsupported probe handler")

// runProbe runs one probe handler against a container once.
func (w *podWorker) runProbe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, h corev1.ProbeHandler, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case h.Exec != nil:
		return w.execCheck(ctx, id, h.Exec.Command)
	case h.HTTPGet != nil:
		return w.httpCheck(ctx, pod, c, h.HTTPGet)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, c)
		if err != nil {
			return err
		}
		conn, err := w.dial(ctx, h.TCPSocket.Host, port)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return errUnsupportedProbe
}

// runHandler runs a lifecycle hook (postStart, preStop).
func (w *podWorker) runHandler(ctx context.Context, pod *corev1.Pod, id string, h *corev1.LifecycleHandler) error {
	_, name, _, _ := parseContainerID(id)
	c := findContainer(pod, name)
	if c == nil {
		return fmt.Errorf("no container %q", name)
	}
	switch {
	case h.Exec != nil:
		return w.execCheck(ctx, id, h.Exec.Command)
	case h.HTTPGet != nil:
		return w.httpCheck(ctx, pod, c, h.HTTPGet)
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case h.TCPSocket != nil:
		return nil // deprecated as a hook; Kubernetes accepts and ignores it
	}
	return errUnsupportedProbe
}

func (w *podWorker) execCheck(ctx context.Context, id string, cmd []string) error {
	var out bytes.Buffer
	code, err := w.a.cfg.Runtime.Exec(ctx, id, runtime.ExecSpec{Args: cmd, Stdout: &out, Stderr: &out})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("command %q exited with %d: %s", strings.Join(cmd, " "), code, truncate(out.String(), 256))
	}
	return nil
}

func (w *podWorker) httpCheck(ctx context.Context, pod *corev1.Pod, c *corev1.Container, g *corev1.HTTPGetAction) error {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := g.Host
	if host == "" {
		host = w.sandboxIP()
	}
	if host == "" {
		host = "127.0.0.1"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return w.dial(ctx, g.Host, port)
		},
		// Probes do not verify certificates, as the kubelet's.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d: %s", resp.StatusCode, truncate(string(body), 128))
	}
	return nil
}

// dial connects to the pod: from inside its network namespace, so that it
// works with or without a pod network, to host (or the pod's address, or
// loopback) and port. A probe naming another host dials from the node.
func (w *podWorker) dial(ctx context.Context, host string, port int) (net.Conn, error) {
	ns := w.sandboxNetNS()
	if host != "" || ns == "" || w.a.hollow {
		if host == "" {
			host = "127.0.0.1"
		}
		return network.DialInNetNS(ctx, "", "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	target := w.sandboxIP()
	if target == "" {
		target = "127.0.0.1"
	}
	return network.DialInNetNS(ctx, ns, "tcp", net.JoinHostPort(target, strconv.Itoa(port)))
}

// resolvePort turns a number or a named container port into a number.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no port named %q in container %q", p.StrVal, c.Name)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
