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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/skiff-dev/skiff/cluster"
)

// TestLeaderKilledDuringRolloutNewLeaderFinishesIt: three server processes and three hollow
// agents; a Deployment's rolling update is under way when the leader (where the controllers
// run) is SIGKILLed. The new leader's controllers finish the rollout without creating a pod
// twice, the ReplicaSets never sum to more than replicas plus maxSurge, and there is no
// second ReplicaSet for the new template.
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

	// Watch through a server that will survive the kill.
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
	// What Kubernetes promises during a rolling update is about the ReplicaSets' replicas
	// (their sum never exceeds replicas + maxSurge); pods follow as the ReplicaSet controller
	// acts, so a pod still being deleted can briefly overlap a new one, on kube-controller-
	// manager too. What a failover must not do is create pods twice: the new leader's
	// controllers start from fresh caches, and a duplicate would show as an extra pod created
	// (and later deleted). A watch from the current revision sees every pod created.
	var mu sync.Mutex
	specPeak := int32(0)
	created := map[string]map[types.UID]bool{} // image -> pods created during the rollout
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	podList, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	rsList, err := client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	// Retrying watches of app=web from the lists' revisions: the server stays up, but a
	// watch may still end (its timeout) and must resume where it was.
	retryWatch := func(rv string, watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) *watchtools.RetryWatcher {
		w, err := watchtools.NewRetryWatcherWithContext(watchCtx, rv, &cache.ListWatch{
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.LabelSelector = "app=web"
				return watchFn(ctx, o)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	podWatch := retryWatch(podList.ResourceVersion, client.CoreV1().Pods("default").Watch)
	rsWatch := retryWatch(rsList.ResourceVersion, client.AppsV1().ReplicaSets("default").Watch)
	wg.Go(func() {
		for ev := range podWatch.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type != watch.Added {
				continue
			}
			img := p.Spec.Containers[0].Image
			mu.Lock()
			if created[img] == nil {
				created[img] = map[types.UID]bool{}
			}
			created[img][p.UID] = true
			mu.Unlock()
		}
	})
	wg.Go(func() {
		replicas := map[types.UID]int32{}
		for _, rs := range rsList.Items {
			replicas[rs.UID] = *rs.Spec.Replicas
		}
		for ev := range rsWatch.ResultChan() {
			rs, ok := ev.Object.(*appsv1.ReplicaSet)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(replicas, rs.UID)
			} else {
				replicas[rs.UID] = *rs.Spec.Replicas
			}
			sum := int32(0)
			for _, r := range replicas {
				sum += r
			}
			mu.Lock()
			specPeak = max(specPeak, sum)
			mu.Unlock()
		}
	})
	stop := func() { stopWatch(); podWatch.Stop(); rsWatch.Stop(); wg.Wait() }
	defer stop()

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
	stop()

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
	if specPeak > 13 {
		t.Errorf("the ReplicaSets' replicas summed to %d during the rollout; at most 13 (10 + maxSurge 3)", specPeak)
	}
	if n := len(created["registry.k8s.io/pause:3.9"]); n != 10 {
		t.Errorf("%d pods of the new template created during the rollout, want 10 (no duplicates after the failover)", n)
	}
	if n := len(created["registry.k8s.io/pause:3.10"]); n != 0 {
		t.Errorf("%d pods of the old template created during the rollout, want none", n)
	}
	t.Logf("ReplicaSets' replicas summed to at most %d; pods created: %d new, %d old",
		specPeak, len(created["registry.k8s.io/pause:3.9"]), len(created["registry.k8s.io/pause:3.10"]))
}
