package controllers_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers/framework"
)

const agentDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: default
spec:
  selector:
    matchLabels: {app: agent}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 1}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: testimage:v1
`

// daemonPods maps node name to the image of each live agent pod there.
func (c *controlPlane) daemonPods(t *testing.T) (map[string][]string, error) {
	pods, err := c.client.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning {
			return nil, fmt.Errorf("pod %s not running yet (node %q, phase %s)", p.Name, p.Spec.NodeName, p.Status.Phase)
		}
		out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p.Spec.Containers[0].Image)
	}
	return out, nil
}

func wantOnePodPerNode(got map[string][]string, image string, nodes ...string) error {
	if len(got) != len(nodes) {
		return fmt.Errorf("pods on %v, want one on each of %v", got, nodes)
	}
	for _, n := range nodes {
		if len(got[n]) != 1 || got[n][0] != image {
			return fmt.Errorf("node %s has %v, want [%s] (all: %v)", n, got[n], image, got)
		}
	}
	return nil
}

// TestDaemonSetOnEveryEligibleNodeAndRollingUpdate: a DaemonSet applied with kubectl runs
// one pod on each node but the tainted one, follows a new node, rolls out a new image never
// losing more than maxUnavailable nodes' pods, and `kubectl rollout undo` takes it back.
func TestDaemonSetOnEveryEligibleNodeAndRollingUpdate(t *testing.T) {
	c := startControlPlane(t, []string{"scheduler", "daemonset"}, framework.Options{})
	ctx := c.ctx
	for i := 1; i <= 4; i++ {
		c.hollow.addNode(ctx, fmt.Sprintf("node-%d", i), "4", "8Gi")
	}
	n4, err := c.client.CoreV1().Nodes().Get(ctx, "node-4", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n4.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	if _, err := c.client.CoreV1().Nodes().Update(ctx, n4, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	c.mustKubectl(t, agentDaemonSet, "daemonset.apps/agent created", "apply", "-f", "-")
	c.mustKubectl(t, "", "successfully rolled out", "rollout", "status", "ds/agent", "--timeout=60s")
	eventually(t, 30*time.Second, "one v1 pod on each untainted node", func() error {
		got, err := c.daemonPods(t)
		if err != nil {
			return err
		}
		return wantOnePodPerNode(got, "testimage:v1", "node-1", "node-2", "node-3")
	})
	pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil {
		t.Fatal(err)
	}
	tolerated := map[string]bool{}
	for _, tol := range pods.Items[0].Spec.Tolerations {
		tolerated[tol.Key+":"+string(tol.Effect)] = true
	}
	for _, want := range []string{"node.kubernetes.io/not-ready:NoExecute", "node.kubernetes.io/unreachable:NoExecute",
		"node.kubernetes.io/unschedulable:NoSchedule"} {
		if !tolerated[want] {
			t.Errorf("daemon pod lacks the default toleration %s: %v", want, pods.Items[0].Spec.Tolerations)
		}
	}

	// A new node gets its pod.
	c.hollow.addNode(ctx, "node-5", "4", "8Gi")
	eventually(t, 30*time.Second, "a pod on the new node", func() error {
		got, err := c.daemonPods(t)
		if err != nil {
			return err
		}
		return wantOnePodPerNode(got, "testimage:v1", "node-1", "node-2", "node-3", "node-5")
	})
	c.mustKubectl(t, "", "successfully rolled out", "rollout", "status", "ds/agent", "--timeout=30s")
	out := c.mustKubectl(t, "", "agent", "get", "ds", "agent", "--no-headers")
	if f := strings.Fields(out); len(f) < 6 || f[1] != "4" || f[2] != "4" || f[3] != "4" || f[4] != "4" || f[5] != "4" {
		t.Fatalf("kubectl get ds: want DESIRED CURRENT READY UP-TO-DATE AVAILABLE all 4:\n%s", out)
	}

	// Rolling update, watched continuously: at most maxUnavailable (1) of the four nodes
	// lacks a ready agent pod at any time.
	var mu sync.Mutex
	minNodesReady, events := 4, 0
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().Pods().Informer()
	check := func(any) {
		nodes := map[string]bool{}
		for _, o := range inf.GetStore().List() {
			p := o.(*corev1.Pod)
			if p.Labels["app"] != "agent" || p.DeletionTimestamp != nil {
				continue
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					nodes[p.Spec.NodeName] = true
				}
			}
		}
		mu.Lock()
		events++
		minNodesReady = min(minNodesReady, len(nodes))
		mu.Unlock()
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, o any) { check(o) }, DeleteFunc: check})
	stop := make(chan struct{})
	factory.Start(stop)
	cache.WaitForCacheSync(stop, inf.HasSynced)
	defer func() { close(stop); factory.Shutdown() }()
	mu.Lock()
	minNodesReady, events = 4, 0
	mu.Unlock()

	c.mustKubectl(t, "", "image updated", "set", "image", "ds/agent", "agent=testimage:v2")
	c.mustKubectl(t, "", "successfully rolled out", "rollout", "status", "ds/agent", "--timeout=60s")
	eventually(t, 10*time.Second, "v2 everywhere", func() error {
		got, err := c.daemonPods(t)
		if err != nil {
			return err
		}
		return wantOnePodPerNode(got, "testimage:v2", "node-1", "node-2", "node-3", "node-5")
	})
	mu.Lock()
	t.Logf("rolling update: %d pod events, minimum nodes with a ready pod %d", events, minNodesReady)
	if minNodesReady < 3 {
		t.Errorf("rolling update took %d nodes' pods down at once; maxUnavailable is 1", 4-minNodesReady)
	}
	mu.Unlock()

	// History and undo, as kubectl reads them from ControllerRevisions.
	c.mustKubectl(t, "", "2 ", "rollout", "history", "ds/agent")
	c.mustKubectl(t, "", "rolled back", "rollout", "undo", "ds/agent")
	c.mustKubectl(t, "", "successfully rolled out", "rollout", "status", "ds/agent", "--timeout=60s")
	eventually(t, 10*time.Second, "back to v1 everywhere", func() error {
		got, err := c.daemonPods(t)
		if err != nil {
			return err
		}
		return wantOnePodPerNode(got, "testimage:v1", "node-1", "node-2", "node-3", "node-5")
	})
	revs, err := c.client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil {
		t.Fatal(err)
	}
	var numbers []int
	for _, r := range revs.Items {
		numbers = append(numbers, int(r.Revision))
	}
	sort.Ints(numbers)
	if fmt.Sprint(numbers) != "[2 3]" {
		t.Errorf("revisions after undo %v, want [2 3] (v1 renumbered to 3)", numbers)
	}
}
