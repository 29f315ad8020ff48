package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// webImages counts the live, ready pods of deployment web by image.
func (c *controlPlane) webImages(t *testing.T) map[string]int {
	t.Helper()
	pods, err := c.client.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out[p.Spec.Containers[0].Image]++
		}
	}
	return out
}

func (c *controlPlane) wantWebImages(t *testing.T, want map[string]int) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("pods %v", want), func() error {
		if got := c.webImages(t); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("running pods by image %v", got)
		}
		return nil
	})
}

// TestKubectlRolloutScaleUndoPauseResume drives a Deployment with the real kubectl the way
// a user does: create, scale, set image, rollout status/history/undo, pause and resume.
func TestKubectlRolloutScaleUndoPauseResume(t *testing.T) {
	c := startControlPlane(t, []string{"scheduler", "replicaset", "deployment"}, framework.Options{})
	for i := 1; i <= 3; i++ {
		c.hollow.addNode(c.ctx, fmt.Sprintf("node-%d", i), "4", "8Gi")
	}
	c.mustKubectl(t, "", "deployment.apps/web created", "create", "deployment", "web", "--image=testimage:v1", "--replicas=3")
	c.mustKubectl(t, "", `deployment "web" successfully rolled out`, "rollout", "status", "deploy/web", "--timeout=60s")
	c.wantWebImages(t, map[string]int{"testimage:v1": 3})

	c.mustKubectl(t, "", "deployment.apps/web scaled", "scale", "deploy/web", "--replicas=6")
	c.mustKubectl(t, "", "successfully rolled out", "rollout", "status", "deploy/web", "--timeout=60s")
	c.wantWebImages(t, map[string]int{"testimage:v1": 6})
	out := c.mustKubectl(t, "", "web", "get", "deploy", "web", "--no-headers")
	if f := strings.Fields(out); len(f) < 4 || f[1] != "6/6" || f[2] != "6" || f[3] != "6" {
		t.Fatalf("kubectl get deploy: want READY 6/6, UP-TO-DATE 6, AVAILABLE 6:\n%s", out)
	}

	c.mustKubectl(t, "", "image updated", "set", "image", "deploy/web", "testimage=testimage:v2")
	c.mustKubectl(t, "", "successfully rolled out", "rollout", "status", "deploy/web", "--timeout=60s")
	c.wantWebImages(t, map[string]int{"testimage:v2": 6})
	hist := c.mustKubectl(t, "", "REVISION", "rollout", "history", "deploy/web")
	if !strings.Contains(hist, "1 ") || !strings.Contains(hist, "2 ") {
		t.Fatalf("rollout history: want revisions 1 and 2:\n%s", hist)
	}

	c.mustKubectl(t, "", "rolled back", "rollout", "undo", "deploy/web")
	c.mustKubectl(t, "", "successfully rolled out", "rollout", "status", "deploy/web", "--timeout=60s")
	c.wantWebImages(t, map[string]int{"testimage:v1": 6})
	d, err := c.client.AppsV1().Deployments("default").Get(c.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rev := d.Annotations["deployment.kubernetes.io/revision"]; rev != "3" {
		t.Fatalf("revision after undo %q, want 3", rev)
	}

	// Paused: template changes wait; resumed: they roll out.
	c.mustKubectl(t, "", "paused", "rollout", "pause", "deploy/web")
	c.mustKubectl(t, "", "image updated", "set", "image", "deploy/web", "testimage=testimage:v3")
	time.Sleep(2 * time.Second)
	if got := c.webImages(t); fmt.Sprint(got) != fmt.Sprint(map[string]int{"testimage:v1": 6}) {
		t.Fatalf("a paused deployment rolled: %v", got)
	}
	sets, err := c.client.AppsV1().ReplicaSets("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range sets.Items {
		if rs.Spec.Template.Spec.Containers[0].Image == "testimage:v3" {
			t.Fatalf("a paused deployment created ReplicaSet %s for the new template", rs.Name)
		}
	}
	c.mustKubectl(t, "", "resumed", "rollout", "resume", "deploy/web")
	c.mustKubectl(t, "", "successfully rolled out", "rollout", "status", "deploy/web", "--timeout=60s")
	c.wantWebImages(t, map[string]int{"testimage:v3": 6})
}

// TestSilentNodeIsTaintedAndItsPodsMoveElsewhere: a node whose lease stops being renewed
// goes Unknown, gets the unreachable taints, its pods are evicted once their (default)
// toleration runs out, and the Deployment's pods run on the other nodes.
func TestSilentNodeIsTaintedAndItsPodsMoveElsewhere(t *testing.T) {
	c := startControlPlane(t, []string{"scheduler", "replicaset", "deployment", "nodelifecycle"}, framework.Options{
		NodeMonitorGracePeriod: 3 * time.Second, NodeMonitorPeriod: 500 * time.Millisecond, DefaultTolerationSeconds: 2 * time.Second})
	for i := 1; i <= 3; i++ {
		c.hollow.addNode(c.ctx, fmt.Sprintf("node-%d", i), "4", "8Gi")
	}
	if _, err := c.client.AppsV1().Deployments("default").Create(c.ctx, webDeployment(6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podsOn := func(node string) (live, evicted int) {
		pods, err := c.client.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName != node {
				continue
			}
			if p.DeletionTimestamp != nil {
				evicted++
			} else {
				live++
			}
		}
		return live, evicted
	}
	eventually(t, 30*time.Second, "6 available, some on node-1", func() error {
		d, err := c.client.AppsV1().Deployments("default").Get(c.ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if live, _ := podsOn("node-1"); d.Status.AvailableReplicas != 6 || live == 0 {
			return fmt.Errorf("available %d, on node-1 %d", d.Status.AvailableReplicas, live)
		}
		return nil
	})
	silent := time.Now()
	c.hollow.stopHeartbeat("node-1")

	eventually(t, 20*time.Second, "node-1 Unknown and tainted unreachable", func() error {
		n, err := c.client.CoreV1().Nodes().Get(c.ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		var ready corev1.ConditionStatus
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				ready = cond.Status
			}
		}
		taints := map[string]bool{}
		for _, tn := range n.Spec.Taints {
			taints[tn.Key+":"+string(tn.Effect)] = true
		}
		if ready != corev1.ConditionUnknown || !taints["node.kubernetes.io/unreachable:NoExecute"] || !taints["node.kubernetes.io/unreachable:NoSchedule"] {
			return fmt.Errorf("Ready=%s taints %v", ready, n.Spec.Taints)
		}
		return nil
	})
	tainted := time.Since(silent)
	eventually(t, 30*time.Second, "node-1's pods evicted and replaced elsewhere", func() error {
		if live, evicted := podsOn("node-1"); live != 0 || evicted == 0 {
			return fmt.Errorf("node-1: %d live, %d evicted", live, evicted)
		}
		d, err := c.client.AppsV1().Deployments("default").Get(c.ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas != 6 {
			return fmt.Errorf("available %d", d.Status.AvailableReplicas)
		}
		return nil
	})
	t.Logf("node tainted %s after going silent; pods evicted and replaced %s after", tainted.Round(100*time.Millisecond),
		time.Since(silent).Round(100*time.Millisecond))
	// The grace period runs from the node's last lease renewal (up to a heartbeat before it
	// went silent) to the NoExecute taint's timeAdded.
	lease, err := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(c.ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.client.CoreV1().Nodes().Get(c.ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range n.Spec.Taints {
		if tn.Effect == corev1.TaintEffectNoExecute && tn.TimeAdded != nil && lease.Spec.RenewTime != nil {
			// timeAdded has second precision: allow for the truncation.
			if gap := tn.TimeAdded.Sub(lease.Spec.RenewTime.Time); gap < 2*time.Second {
				t.Errorf("tainted %s after the last lease renewal, before the 3s grace period", gap)
			}
		}
	}
	live2, _ := podsOn("node-2")
	live3, _ := podsOn("node-3")
	if live2+live3 != 6 {
		t.Errorf("pods on node-2 and node-3: %d + %d, want 6", live2, live3)
	}
}
