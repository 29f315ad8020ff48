package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestWatchDeliversABurstWhoseLastEventIsFilteredOut: a watcher flushes once after the
// last queued event rather than after each; when that last event does not match the
// watcher's selector, the matching ones before it must still reach the client at once.
func TestWatchDeliversABurstWhoseLastEventIsFilteredOut(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cms := c.Client(0).CoreV1().ConfigMaps("default")
	w, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "burst=yes"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("b-%d", i), Labels: map[string]string{"burst": "yes"}}}
			if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// The last event of the burst matches no watcher's selector.
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"burst": "no"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := 0
	timeout := time.After(5 * time.Second) // no bookmark or later event will come to flush
	for got < n {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed after %d events", got)
			}
			got++
		case <-timeout:
			t.Fatalf("%d of %d events delivered", got, n)
		}
	}
}
