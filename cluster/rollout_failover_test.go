package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/cluster"
)

// TestLeaderKilledDuringRolloutNewLeaderFinishesIt: three server processes and three hollow
// agents; a Deployment's rolling update is under way when the leader (where the controllers
// run) is SIGKILLed. The new leader's controllers finish the rollout, and at no point are
// there more pods than replicas plus maxSurge, nor a second ReplicaSet for the new template.
func TestLeaderKilledDuringRolloutNewLeaderFinishesIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log strings.Builder
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 3, Agents: 3, Runtime: "hollow", Binary: skiffBin, Progress: &log})
	t.Cleanup(func() {
		if err := cluster.Down(dir, true, os.Stderr); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("up: %v\n%s\n%s", err, log.String(), serverLogs(lc))
	}
	first := leader(t, lc, "")
	mustKubectl(t, lc, first, "create", "deployment", "web", "--image=registry.k8s.io/pause:3.10", "--replicas=10")
	mustKubectl(t, lc, first, "rollout", "status", "deploy/web", "--timeout=25s")

	// Watch the pods through a server that will survive: the most live (not terminating)
	// pods ever seen at once.
	var watchVia string
	for _, p := range lc.Processes {
		if p.Role == "server" && p.Name != first {
			watchVia = p.Name
		}
	}
	rc, err := cluster.RestConfig(lc.Kubeconfig, watchVia)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	peak := 0
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for watchCtx.Err() == nil {
			pods, err := client.CoreV1().Pods("default").List(watchCtx, metav1.ListOptions{LabelSelector: "app=web"})
			if err == nil {
				live := 0
				for _, p := range pods.Items {
					if p.DeletionTimestamp == nil {
						live++
					}
				}
				mu.Lock()
				peak = max(peak, live)
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	defer func() { stopWatch(); wg.Wait() }()

	mustKubectl(t, lc, watchVia, "set", "image", "deploy/web", "pause=registry.k8s.io/pause:3.9")
	// Let the rollout start, then kill the leader mid-way.
	eventually(t, 20*time.Second, func() error {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.UpdatedReplicas == 0 {
			return fmt.Errorf("rollout not started")
		}
		return nil
	})
	old := leader(t, lc, "")
	if err := syscall.Kill(process(lc, old).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	newLeader := leader(t, lc, old)
	t.Logf("leader %s killed mid-rollout; %s leads", old, newLeader)
	var via string
	for _, p := range lc.Processes {
		if p.Role == "server" && p.Name != old {
			via = p.Name
		}
	}
	eventually(t, 90*time.Second, func() error {
		out, err := kubectl(t, lc, via, "rollout", "status", "deploy/web", "--timeout=20s")
		if err != nil || !strings.Contains(out, "successfully rolled out") {
			return fmt.Errorf("rollout status: %v: %s", err, out)
		}
		return nil
	})
	stopWatch()
	wg.Wait()

	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		live++
		if img := p.Spec.Containers[0].Image; img != "registry.k8s.io/pause:3.9" {
			t.Errorf("pod %s runs %s after the rollout", p.Name, img)
		}
	}
	if live != 10 {
		t.Errorf("%d live pods after the rollout, want 10", live)
	}
	sets, err := client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sets.Items) != 2 {
		t.Errorf("%d ReplicaSets, want 2 (old and new)", len(sets.Items))
	}
	mu.Lock()
	defer mu.Unlock()
	// maxSurge defaults to 25% of 10, rounded up: 3.
	if peak > 13 {
		t.Errorf("%d live pods at once during the rollout; at most 13 (10 + maxSurge 3) may exist", peak)
	}
	t.Logf("at most %d live pods during the rollout", peak)
}
