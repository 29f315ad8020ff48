package apiserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	streaming "k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// fakeKubelet is a unit-test stand-in for a node agent's HTTPS endpoint: it records what
// the apiserver asked, streams logs in two steps, serves exec over SPDY with an echo
// executor, and answers a websocket upgrade with a raw echo.
type fakeKubelet struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []*url.URL
	clientCN []string
	release  chan struct{} // lets the second log line go
}

func newFakeKubelet(t *testing.T, c *apitest.Cluster) *fakeKubelet {
	k := &fakeKubelet{release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		k.record(r)
		fmt.Fprintln(w, "line 1")
		w.(http.Flusher).Flush()
		select {
		case <-k.release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintln(w, "line 2")
	})
	exec := func(w http.ResponseWriter, r *http.Request) {
		k.record(r)
		if r.PathValue("container") == "rawecho" {
			// Not a real websocket server: enough to see the upgrade and the
			// subprotocol pass through, then bytes both ways.
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Sec-WebSocket-Protocol", r.Header.Get("Sec-WebSocket-Protocol"))
			w.WriteHeader(http.StatusSwitchingProtocols)
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo: " + line)
			brw.Flush()
			return
		}
		opts, err := streaming.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		streaming.ServeExec(w, r, echoExecutor{}, r.PathValue("pod"), "", r.PathValue("container"), r.URL.Query()["command"], opts,
			time.Minute, 10*time.Second, remotecommandconsts.SupportedStreamingProtocols)
	}
	mux.HandleFunc("POST /portForward/{ns}/{pod}", func(w http.ResponseWriter, r *http.Request) {
		k.record(r)
		w.WriteHeader(http.StatusNoContent) // enough to see the route; the upgrade is exec's
	})
	mux.HandleFunc("GET /exec/{ns}/{pod}/{container}", exec)
	mux.HandleFunc("POST /exec/{ns}/{pod}/{container}", exec)
	k.srv = httptest.NewUnstartedServer(mux)
	k.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{c.PKI.ServerCert(t).TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: c.PKI.Pool,
		NextProtos: []string{"http/1.1"},
	}
	k.srv.StartTLS()
	t.Cleanup(k.srv.Close)
	return k
}

func (k *fakeKubelet) record(r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests = append(k.requests, r.URL)
	k.clientCN = append(k.clientCN, r.TLS.PeerCertificates[0].Subject.CommonName)
}

func (k *fakeKubelet) last() (*url.URL, string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.requests[len(k.requests)-1], k.clientCN[len(k.clientCN)-1]
}

type echoExecutor struct{}

func (echoExecutor) ExecInContainer(_ context.Context, _, _, _ string, cmd []string, in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan streaming.TerminalSize, _ time.Duration) error {
	fmt.Fprintf(out, "%s: ", strings.Join(cmd, " "))
	_, err := io.Copy(out, in)
	return err
}

// TestPodSubresourcesProxyToTheNodeAgent: pods/log and pods/exec reach the agent of the
// pod's node (found through the Node's InternalIP and kubelet port) with the apiserver's
// client certificate, the kubelet's paths and query, streaming and upgrades intact.
func TestPodSubresourcesProxyToTheNodeAgent(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := newFakeKubelet(t, c)
	_, portStr, _ := net.SplitHostPort(k.srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	cs := c.Client(0)
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{NodeName: "n1",
		Containers: []corev1.Container{{Name: "app", Image: "x"}, {Name: "side", Image: "x"}, {Name: "rawecho", Image: "x"}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	unbound := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pending"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x"}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, unbound, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Logs: the query reaches the agent, and the first line arrives before the second is written.
	tail, since := int64(5), int64(30)
	stream, err := cs.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Container: "side", Follow: true,
		TailLines: &tail, SinceSeconds: &since, Timestamps: true}).Stream(ctx)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	br := bufio.NewReader(stream)
	if line, err := br.ReadString('\n'); err != nil || line != "line 1\n" {
		t.Fatalf("first log line before the second was written: %q %v", line, err)
	}
	close(k.release)
	if line, err := br.ReadString('\n'); err != nil || line != "line 2\n" {
		t.Fatalf("second log line: %q %v", line, err)
	}
	stream.Close()
	u, cn := k.last()
	if u.Path != "/containerLogs/default/web/side" || cn != "kube-apiserver-kubelet-client" {
		t.Fatalf("agent saw %s from %q", u.Path, cn)
	}
	for k, v := range map[string]string{"follow": "true", "tailLines": "5", "sinceSeconds": "30", "timestamps": "true"} {
		if u.Query().Get(k) != v {
			t.Errorf("log query %s = %q, want %q (%s)", k, u.Query().Get(k), v, u.RawQuery)
		}
	}

	// Errors as kube-apiserver gives them: no container named among several, an unbound pod.
	if _, err := cs.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{}).DoRaw(ctx); !apierrors.IsBadRequest(err) {
		t.Errorf("logs without a container of a two-container pod: want 400, got %v", err)
	}
	if _, err := cs.CoreV1().Pods("default").GetLogs("pending", &corev1.PodLogOptions{}).DoRaw(ctx); !apierrors.IsBadRequest(err) {
		t.Errorf("logs of an unbound pod: want 400, got %v", err)
	}

	// Exec over SPDY/3.1 with the real client-go executor: stdin in, stdout back.
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("web").SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "app", Command: []string{"cat", "-n"}, Stdin: true, Stdout: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(c.RESTConfig(0), "POST", req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("hello\n"), Stdout: &out}); err != nil {
		t.Fatalf("exec over SPDY: %v", err)
	}
	if out.String() != "cat -n: hello\n" {
		t.Fatalf("exec output %q", out.String())
	}
	u, _ = k.last()
	if u.Path != "/exec/default/web/app" || strings.Join(u.Query()["command"], " ") != "cat -n" || u.Query().Get("input") != "1" || u.Query().Get("output") != "1" || u.Query().Get("error") != "" {
		t.Fatalf("exec reached the agent as %s", u)
	}

	// Port-forward reaches /portForward/<ns>/<pod> with its ports.
	if err := cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("portforward").
		Param("ports", "8080").Do(ctx).Error(); err != nil {
		t.Fatalf("portforward: %v", err)
	}
	if u, _ = k.last(); u.Path != "/portForward/default/web" || u.Query().Get("ports") != "8080" {
		t.Fatalf("portforward reached the agent as %s", u)
	}

	// A websocket upgrade (kubectl's v5.channel.k8s.io) passes through with its subprotocol.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(c.URLs[0], "https://"), &tls.Config{RootCAs: c.PKI.Pool,
		Certificates: []tls.Certificate{c.Admin.TLS}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/v1/namespaces/default/pods/web/exec?container=rawecho&command=sh&stdin=true&stdout=true HTTP/1.1\r\nHost: x\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
		"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
	cr := bufio.NewReader(conn)
	resp, err := http.ReadResponse(cr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "v5.channel.k8s.io" {
		t.Fatalf("websocket upgrade: %s %v", resp.Status, resp.Header)
	}
	fmt.Fprintf(conn, "ping\n")
	if line, err := cr.ReadString('\n'); err != nil || line != "echo: ping\n" {
		t.Fatalf("bytes through the upgraded connection: %q %v", line, err)
	}

	// The real kubectl: exec tries websocket v5.channel.k8s.io first; the agent's stream
	// server (cri-streaming, as the kubelet's) refuses that protocol, and kubectl falls
	// back to SPDY through the same proxy. Logs too.
	if _, err := os.Stat(kubectlBin); err != nil {
		return
	}
	kc := c.Kubeconfig(0)
	mustKubectl(t, kc, "hi there\n", "cat: hi there", "exec", "-i", "web", "-c", "app", "--", "cat")
	mustKubectl(t, kc, "", "line 1", "logs", "web", "-c", "side", "--tail=3")
}
