package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// startHollowAgent runs an agent with the hollow runtime against a fake
// clientset until the test ends.
func startHollowAgent(t *testing.T, client kubernetes.Interface, mutate func(*Config)) (*Agent, *runtime.Hollow) {
	t.Helper()
	rt := runtime.NewHollow()
	cfg := Config{
		NodeName:             "node-a",
		Client:               client,
		Runtime:              rt,
		DataDir:              t.TempDir(),
		ListenAddr:           "127.0.0.1:0",
		HousekeepingInterval: 200 * time.Millisecond,
		BackoffInitial:       200 * time.Millisecond,
		BackoffMax:           time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return a, rt
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

func testPod(name string, containers ...corev1.Container) *corev1.Pod {
	if len(containers) == 0 {
		containers = []corev1.Container{{Name: "main", Image: "skiff.local/testimage:latest"}}
	}
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			NodeName:                      "node-a",
			Containers:                    containers,
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

func getPod(client kubernetes.Interface, name string) (*corev1.Pod, error) {
	return client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
}

func TestAgentRegistersNodeAndRenewsLease(t *testing.T) {
	client := fake.NewSimpleClientset()
	startHollowAgent(t, client, func(c *Config) { c.Labels = map[string]string{"zone": "a"} })
	ctx := context.Background()
	eventually(t, 10*time.Second, "node and lease", func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if n.Labels[corev1.LabelHostname] != "node-a" || n.Labels[corev1.LabelOSStable] != "linux" || n.Labels["zone"] != "a" {
			return false, fmt.Sprintf("labels %v", n.Labels)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods, corev1.ResourceEphemeralStorage} {
			if q, ok := n.Status.Allocatable[r]; !ok || q.IsZero() {
				return false, fmt.Sprintf("allocatable %s missing", r)
			}
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready || n.Status.NodeInfo.KubeletVersion == "" || len(n.Status.Addresses) == 0 {
			return false, "status incomplete"
		}
		l, err := client.CoordinationV1().Leases(nodeLeaseNamespace).Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return l.Spec.RenewTime != nil && *l.Spec.HolderIdentity == "node-a", "lease not renewed"
	})
}

func TestHollowPodGoesRunningAndReady(t *testing.T) {
	client := fake.NewSimpleClientset(testPod("web"))
	startHollowAgent(t, client, nil)
	eventually(t, 10*time.Second, "pod running and ready", func() (bool, string) {
		p, err := getPod(client, "web")
		if err != nil {
			return false, err.Error()
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
			return false, fmt.Sprintf("phase %s", p.Status.Phase)
		}
		cs := p.Status.ContainerStatuses[0]
		if cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started || cs.ContainerID == "" {
			return false, fmt.Sprintf("container status %+v", cs)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
				return false, "not Ready"
			}
		}
		return p.Status.StartTime != nil && p.Status.HostIP != "", "startTime/hostIP"
	})
}

// TestPodStatusIsPatched: as the kubelet's status manager, the agent sends its pod's status
// as a strategic merge patch with the pod's uid, never a read-modify-update that conflicts
// with other writers (and costs a read on each conflict).
func TestPodStatusIsPatched(t *testing.T) {
	client := fake.NewSimpleClientset(testPod("web"))
	startHollowAgent(t, client, nil)
	eventually(t, 10*time.Second, "pod running", func() (bool, string) {
		p, err := getPod(client, "web")
		return err == nil && p.Status.Phase == corev1.PodRunning, "not running"
	})
	patches := 0
	for _, a := range client.Actions() {
		if a.GetResource().Resource != "pods" || a.GetSubresource() != "status" {
			continue
		}
		switch a := a.(type) {
		case k8stesting.PatchAction:
			if a.GetPatchType() != types.StrategicMergePatchType || !strings.Contains(string(a.GetPatch()), `"uid":"uid-web"`) {
				t.Errorf("status patch %s %s: want a strategic merge patch with the pod's uid", a.GetPatchType(), a.GetPatch())
			}
			patches++
		default:
			t.Errorf("status written with %s, want patch", a.GetVerb())
		}
	}
	if patches == 0 {
		t.Error("no status patch")
	}
}

func TestDeletingPodStopsContainersThenDeletesObject(t *testing.T) {
	client := fake.NewSimpleClientset(testPod("doomed"))
	_, rt := startHollowAgent(t, client, nil)
	ctx := context.Background()
	eventually(t, 10*time.Second, "pod running", func() (bool, string) {
		p, err := getPod(client, "doomed")
		return err == nil && p.Status.Phase == corev1.PodRunning, "not running"
	})
	// The fake clientset deletes at once; mark the deletion as the
	// apiserver's graceful delete does instead.
	p, _ := getPod(client, "doomed")
	now := metav1.Now()
	grace := int64(1)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "pod object deleted and containers removed", func() (bool, string) {
		if _, err := getPod(client, "doomed"); err == nil {
			return false, "pod still exists"
		}
		list, _ := rt.List(ctx)
		return len(list) == 0, fmt.Sprintf("%d containers left", len(list))
	})
}

func TestContainersOfVanishedPodsAreRemoved(t *testing.T) {
	client := fake.NewSimpleClientset()
	rt := runtime.NewHollow()
	ctx := context.Background()
	// Left by an earlier agent for a pod deleted while it was down.
	if _, err := rt.Start(ctx, runtime.Spec{ID: containerID("gone-uid", "main", 0), Args: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	startHollowAgent(t, client, func(c *Config) { c.Runtime = rt })
	eventually(t, 10*time.Second, "orphan removed", func() (bool, string) {
		list, _ := rt.List(ctx)
		return len(list) == 0, fmt.Sprintf("%d containers", len(list))
	})
}

func TestRunningContainersOfExistingPodsAreAdoptedNotRestarted(t *testing.T) {
	pod := testPod("kept")
	client := fake.NewSimpleClientset(pod)
	rt := runtime.NewHollow()
	ctx := context.Background()
	id := containerID(pod.UID, "main", 0)
	st, err := rt.Start(ctx, runtime.Spec{ID: id, Args: []string{"x"}, Annotations: map[string]string{
		annoNamespace: "default", annoPodName: "kept", annoImage: "skiff.local/testimage:latest",
	}})
	if err != nil {
		t.Fatal(err)
	}
	startHollowAgent(t, client, func(c *Config) { c.Runtime = rt })
	eventually(t, 10*time.Second, "pod running with the adopted container", func() (bool, string) {
		p, err := getPod(client, "kept")
		if err != nil || len(p.Status.ContainerStatuses) != 1 {
			return false, "no status"
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.ContainerID == containerIDPrefix+id && cs.RestartCount == 0 && cs.State.Running != nil &&
			cs.State.Running.StartedAt.Unix() == st.StartedAt.Unix(), fmt.Sprintf("%+v", cs)
	})
	list, _ := rt.List(ctx)
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("containers %+v", list)
	}
}

func TestStaticPodRunsAndIsMirrored(t *testing.T) {
	dir := t.TempDir()
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: static-web
  namespace: kube-system
spec:
  containers:
  - name: web
    image: skiff.local/testimage:latest
`
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	client := fake.NewSimpleClientset()
	_, rt := startHollowAgent(t, client, func(c *Config) {
		c.PodManifestPath, c.StaticPodCheckInterval = dir, 200*time.Millisecond
	})
	ctx := context.Background()
	eventually(t, 10*time.Second, "mirror pod Running", func() (bool, string) {
		p, err := client.CoreV1().Pods("kube-system").Get(ctx, "static-web-node-a", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if p.Annotations[annoConfigMirror] == "" {
			return false, "no mirror annotation"
		}
		return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase)
	})
	// Deleting the mirror pod does not stop the static pod: it comes back.
	if err := client.CoreV1().Pods("kube-system").Delete(ctx, "static-web-node-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "mirror pod recreated", func() (bool, string) {
		_, err := client.CoreV1().Pods("kube-system").Get(ctx, "static-web-node-a", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if list, _ := rt.List(ctx); len(list) != 1 || list[0].State != runtime.StateRunning {
		t.Fatalf("containers %+v", list)
	}
	// Removing the manifest stops the pod and removes the mirror.
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "static pod gone", func() (bool, string) {
		list, _ := rt.List(ctx)
		_, err := client.CoreV1().Pods("kube-system").Get(ctx, "static-web-node-a", metav1.GetOptions{})
		return len(list) == 0 && err != nil, fmt.Sprintf("%d containers, mirror err %v", len(list), err)
	})
}

// TestLeaseRenewalIsOneWrite: as the kubelet's lease controller, the agent renews from the
// Lease it last wrote (one update, no read), reads again only when its copy is stale, and
// creates the Lease again when it was deleted.
func TestLeaseRenewalIsOneWrite(t *testing.T) {
	client := fake.NewSimpleClientset()
	startHollowAgent(t, client, func(c *Config) { c.LeaseDuration = 400 * time.Millisecond })
	ctx := context.Background()
	leases := client.CoordinationV1().Leases(nodeLeaseNamespace)
	renewals := func() (updates, gets int) {
		for _, a := range client.Actions() {
			if a.GetResource().Resource == "leases" {
				switch a.GetVerb() {
				case "update":
					updates++
				case "get":
					gets++
				}
			}
		}
		return
	}
	eventually(t, 10*time.Second, "ten renewals", func() (bool, string) {
		u, g := renewals()
		return u >= 10, fmt.Sprintf("%d updates, %d gets", u, g)
	})
	if u, g := renewals(); g > 2 {
		t.Fatalf("%d lease reads for %d renewals: renewals should not read", g, u)
	}
	if err := leases.Delete(ctx, "node-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "lease created again", func() (bool, string) {
		l, err := leases.Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return l.Spec.RenewTime != nil, "no renewTime"
	})
}

// TestRunningPodStatusIsNotRewritten: the API keeps timestamps to the second (JSON and
// protobuf alike), so a status computed with the runtime's nanoseconds never equals the
// pod read back; as the kubelet's normalizeStatus, the agent compares and writes at second
// precision, and a Running pod whose state does not change gets no more writes.
func TestRunningPodStatusIsNotRewritten(t *testing.T) {
	// The status patch goes through JSON, as to the apiserver: the stored pod holds seconds.
	client := fake.NewSimpleClientset(testPod("steady"))
	startHollowAgent(t, client, nil) // housekeeping every 200 ms
	statusWrites := func() int {
		n := 0
		for _, a := range client.Actions() {
			if (a.GetVerb() == "patch" || a.GetVerb() == "update") && a.GetResource().Resource == "pods" && a.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, "pod running and ready", func() (bool, string) {
		p, err := getPod(client, "steady")
		if err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("phase %s", p.Status.Phase)
	})
	before := statusWrites()
	time.Sleep(2 * time.Second) // ten housekeeping rounds
	if after := statusWrites(); after > before {
		t.Fatalf("%d status writes for a Running pod that did not change in 2 s", after-before)
	}
}
