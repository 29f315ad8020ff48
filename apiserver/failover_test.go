package apiserver_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestWatchResumesAcrossLeaderChange watches through a follower while the leader is killed
// mid-stream; resuming from the last resourceVersion seen, the watcher gets every change
// exactly once and in order.
func TestWatchResumesAcrossLeaderChange(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	leader := c.Raft.WaitLeader(10 * time.Second)
	var li int
	var others []int
	for i, n := range c.Raft.Nodes {
		if n == leader {
			li = i
		} else {
			others = append(others, i)
		}
	}
	reader, writer := c.Client(others[0]), c.Client(others[1])
	list, err := reader.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}

	const total = 40
	writes := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			if i == total/2 {
				leader.Stop() // kill the leader half-way through
			}
			name := fmt.Sprintf("cm-%02d", i)
			for {
				_, err := writer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				if err == nil || apierrors.IsAlreadyExists(err) {
					break // an earlier attempt may have committed without an answer
				}
				if ctx.Err() != nil {
					writes <- fmt.Errorf("create %s: %w", name, err)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		writes <- nil
	}()

	seen := map[string]int{}
	lastRV, resumes := list.ResourceVersion, 0
	for len(seen) < total {
		w, err := reader.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: lastRV})
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("watch: %v (saw %d of %d)", err, len(seen), total)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		resumes++
		got := 0
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				t.Fatalf("watch error event from %s: %v", lastRV, apierrors.FromObject(ev.Object))
			}
			cm := ev.Object.(*corev1.ConfigMap)
			if ev.Type != watch.Added {
				t.Fatalf("unexpected %s %s", ev.Type, cm.Name)
			}
			prev, _ := strconv.ParseInt(lastRV, 10, 64)
			rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
			if rv <= prev {
				t.Fatalf("%s at resourceVersion %d after %d", cm.Name, rv, prev)
			}
			seen[cm.Name]++
			if seen[cm.Name] > 1 {
				t.Fatalf("%s seen twice", cm.Name)
			}
			lastRV = cm.ResourceVersion
			// Leave every 7 events as well, so resuming from lastRV is exercised
			// whether or not the server ends the stream at the leader change.
			if got++; len(seen) == total || got == 7 {
				break
			}
		}
		w.Stop()
	}
	if err := <-writes; err != nil {
		t.Fatal(err)
	}
	if l := c.Raft.WaitLeader(10 * time.Second); l == c.Raft.Nodes[li] {
		t.Fatal("the killed node still leads")
	}
	t.Logf("saw %d creates exactly once over %d watch(es)", total, resumes)
}
