package nodeagent

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// TestPortForwardReachesThePodsLocalhost: a port-forward stream reaches a server that
// listens inside the pod's network namespace, as `kubectl port-forward` does.
func TestPortForwardReachesThePodsLocalhost(t *testing.T) {
	pod := uniquePod("pf", serverCtr("main"))
	client := fake.NewSimpleClientset(pod)
	a := startRealAgent(t, client, nil)
	waitPod(t, client, "pf", 30*time.Second, ready)

	u, _ := url.Parse(fmt.Sprintf("https://127.0.0.1:%d/portForward/default/pf", a.Port()))
	rt, upgrader, err := spdy.RoundTripperFor(&rest.Config{Host: u.Host, TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, err := portforward.New(spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", u), []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("port-forward not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("ports %v %v", ports, err)
	}
	eventually(t, 15*time.Second, "an answer through the forward", func() (bool, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hostname", ports[0].Local))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == "pf\n", fmt.Sprintf("%q", b)
	})
}
