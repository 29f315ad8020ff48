package apiserver_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/apitest"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

// TestInformersSyncAndFollow: a client-go shared informer on one node lists, syncs, and
// then follows creates, updates and deletes written through another node.
func TestInformersSyncAndFollow(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	writer := c.Client(0)
	for i := 0; i < 3; i++ {
		if _, err := writer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pre-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f := informers.NewSharedInformerFactoryWithOptions(c.Client(2), 0, informers.WithNamespace("default"))
	inf := f.Core().V1().ConfigMaps()
	events := make(chan string, 100)
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, n any) { events <- "update " + n.(*corev1.ConfigMap).Name },
	}); err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	defer func() { cancel(); f.Shutdown() }() // Shutdown waits for the informers, which stop with ctx
	start := time.Now()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		t.Fatal("informer never synced")
	}
	t.Logf("synced in %s", time.Since(start))
	names := func() string {
		objs, _ := inf.Lister().ConfigMaps("default").List(labels.Everything())
		var out []string
		for _, o := range objs {
			out = append(out, o.Name)
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	if got := names(); !strings.HasPrefix(got, "pre-0,pre-1,pre-2") {
		t.Fatalf("synced cache: %s", got)
	}
	if _, err := writer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := writer.CoreV1().ConfigMaps("default").Delete(ctx, "pre-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, _ := writer.CoreV1().ConfigMaps("default").Get(ctx, "pre-1", metav1.GetOptions{})
	cm.Data = map[string]string{"k": "v"}
	if _, err := writer.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rafttest.Eventually(t, 20*time.Second, func() error {
		got := names()
		if strings.Contains(got, "pre-0") || !strings.Contains(got, "new") {
			return fmt.Errorf("cache: %s", got)
		}
		if o, err := inf.Lister().ConfigMaps("default").Get("pre-1"); err != nil || o.Data["k"] != "v" {
			return fmt.Errorf("pre-1 not updated in the cache")
		}
		return nil
	})
	select {
	case ev := <-events:
		if ev != "update pre-1" {
			t.Fatalf("first update event: %s", ev)
		}
	case <-ctx.Done():
		t.Fatal("no update event")
	}
}
