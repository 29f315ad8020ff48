package nodeagent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

// portForward serves `kubectl port-forward` (GET|POST /portForward/<namespace>/<pod>) as
// the kubelet does: each stream the client opens is joined to a TCP connection made to
// localhost:<port> inside the pod's network namespace.
func (s *server) portForward(w http.ResponseWriter, r *http.Request) {
	ri, ok := s.authorize(w, r, "portforward")
	if !ok {
		return
	}
	pod := s.a.pods.findPod(ri.Namespace, ri.Pod)
	if pod == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s not found on node %s", ri.Namespace, ri.Pod, s.a.cfg.NodeName), http.StatusNotFound)
		return
	}
	nsPath := ""
	switch {
	case pod.Spec.HostNetwork:
		nsPath = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	case s.a.net != nil:
		nsPath = s.a.net.NetNSPath(string(pod.UID))
	default:
		http.Error(w, "port-forward needs the pod's network: this node runs a hollow runtime", http.StatusBadRequest)
		return
	}
	if _, err := os.Stat(nsPath); err != nil {
		http.Error(w, fmt.Sprintf("pod %s/%s has no network namespace yet", ri.Namespace, ri.Pod), http.StatusBadRequest)
		return
	}
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, netnsForwarder{path: nsPath}, pod.Name, string(pod.UID), opts,
		4*time.Hour, 30*time.Second, portforward.SupportedProtocols)
}

type netnsForwarder struct{ path string }

// PortForward copies between the stream and localhost:port in the pod's namespace.
func (f netnsForwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	conn, err := dialInNetNS(ctx, f.path, "localhost:"+strconv.Itoa(int(port)))
	if err != nil {
		return fmt.Errorf("port-forward to port %d: %w", port, err)
	}
	defer conn.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // the client is done sending
		}
	}()
	_, err = io.Copy(stream, conn)
	_ = stream.Close()
	wg.Wait()
	return err
}

// dialInNetNS makes the socket inside the namespace: the socket keeps its namespace after
// the thread switches back. The thread is locked for the switch and, should the switch
// back fail, never returned to the Go scheduler.
func dialInNetNS(ctx context.Context, path, addr string) (net.Conn, error) {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err := d.DialContext(ctx, "tcp4", addr)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the thread dies with this goroutine, still locked
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
