package nodeagent_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apitest"
	"github.com/skiff-dev/skiff/nodeagent"
	"github.com/skiff-dev/skiff/nodeagent/image"
	"github.com/skiff-dev/skiff/nodeagent/image/imagetest"
	"github.com/skiff-dev/skiff/nodeagent/network"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// TestAgentRunsPodAgainstRealControlPlane runs the agent, as
// system:node:<name>, against a three-node raftstore with apiservers, and a
// pod bound to it goes Running with its output in the agent's log endpoint.
func TestAgentRunsPodAgainstRealControlPlane(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root: containers need namespaces, cgroups and mounts (CI=true forbids skipping)")
		}
		t.Skip("needs root: containers need namespaces, cgroups and mounts")
	}
	ctx := context.Background()
	cp := apitest.Start(t, 3, apitest.Options{})
	const node = "agent-int"
	nodeCert := cp.PKI.ClientCert(t, "system:node:"+node, "system:nodes")
	nodeClient, err := kubernetes.NewForConfig(cp.RESTConfigFor(0, nodeCert))
	if err != nil {
		t.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "nodeagent-int-")
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagetest.Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	store, err := image.NewStore(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Add(ctx, image.TestImageRef, img); err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.NewLibcontainer(runtime.Config{Root: filepath.Join(dir, "runtime"), CgroupRoot: "skiff-test"})
	if err != nil {
		t.Fatal(err)
	}
	bridge := fmt.Sprintf("ski%06x", rand.Uint32()&0xffffff)
	netm, err := network.New(network.Config{StateDir: filepath.Join(dir, "agent", "network"), Bridge: bridge})
	if err != nil {
		t.Fatal(err)
	}
	a, err := nodeagent.New(nodeagent.Config{
		NodeName: node, Client: nodeClient, Runtime: rt, Images: store,
		DataDir: filepath.Join(dir, "agent"), ListenAddr: "127.0.0.1:0", Network: netm,
		PodCIDR: fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(250)),
	})
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		list, _ := rt.List(ctx)
		for _, st := range list {
			_ = rt.Remove(ctx, st.ID)
		}
		rt.Close()
		ids, _ := netm.IDs()
		for _, id := range ids {
			_ = netm.Teardown(id)
		}
		if l, err := netlink.LinkByName(bridge); err == nil {
			_ = netlink.LinkDel(l)
		}
		os.RemoveAll(dir)
	})

	admin := cp.Client(1) // another apiserver than the agent's
	eventually(t, 20*time.Second, "node Ready", func() error {
		n, err := admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", n.Status.Conditions)
	})
	// The Lease is renewed beside the node status, not before it (as the kubelet's).
	eventually(t, 20*time.Second, "node lease", func() error {
		_, err := admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{})
		return err
	})

	// An init container prints a line; the app container serves HTTP.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName: node,
			InitContainers: []corev1.Container{{
				Name: "hello", Image: image.TestImageRef, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"echo", "hello", "from", "a", "real", "control", "plane"},
			}},
			Containers: []corev1.Container{{
				Name: "main", Image: image.TestImageRef, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"serve", "--port", "8080"},
			}},
		},
	}
	if _, err := admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "pod Running and Ready", func() error {
		p, err := admin.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			return fmt.Errorf("phase %q ip %q statuses %+v", p.Status.Phase, p.Status.PodIP, p.Status.ContainerStatuses)
		}
		return nil
	})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	eventually(t, 20*time.Second, "init container output in the log endpoint", func() error {
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/containerLogs/default/hello/hello", a.Port()))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "hello from a real control plane\n" {
			return fmt.Errorf("%d %q", resp.StatusCode, body)
		}
		return nil
	})

	// Deleting through the API: the agent stops the pod and removes the
	// object with grace 0.
	grace := int64(5)
	if err := admin.CoreV1().Pods("default").Delete(ctx, "hello", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "pod deleted and its containers gone", func() error {
		if _, err := admin.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{}); err == nil {
			return fmt.Errorf("pod still there")
		}
		if list, _ := rt.List(ctx); len(list) > 0 {
			return fmt.Errorf("%d containers left", len(list))
		}
		return nil
	})
}

func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %v", what, err)
}
