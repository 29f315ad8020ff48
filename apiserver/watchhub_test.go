package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apitest"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

// TestWatchersShareOneStream: many watchers of one resource on a node, in one namespace,
// across namespaces and with a label selector, are fed by one shared store watch and each
// get exactly their events in order; the shared watch stops with the last watcher.
func TestWatchersShareOneStream(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reader, writer := c.Client(1), c.Client(0)
	// Half the watchers speak protobuf: frames are shared per media type.
	pbCfg := c.RESTConfig(1)
	pbCfg.ContentType, pbCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf", "application/vnd.kubernetes.protobuf"
	pbReader, err := kubernetes.NewForConfig(pbCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"fan", "other"} {
		if _, err := writer.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := reader.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type spec struct {
		ns, selector string
		want         int
	}
	const writes = 20 // per namespace; every other one labelled
	specs := []spec{{"fan", "", writes}, {"", "", 2 * writes}, {"fan", "even=true", writes / 2}}
	var watchers []watch.Interface
	var wants []int
	for i := 0; i < 30; i++ {
		sp := specs[i%len(specs)]
		cs := kubernetes.Interface(reader)
		if i%2 == 1 {
			cs = pbReader
		}
		w, err := cs.CoreV1().ConfigMaps(sp.ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: sp.selector})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watchers, wants = append(watchers, w), append(wants, sp.want)
	}
	if n := c.Servers[1].SharedStreams(); n != 1 {
		t.Fatalf("shared streams with 30 configmap watchers: %d, want 1", n)
	}
	for i := 0; i < writes; i++ {
		for _, ns := range []string{"fan", "other"} {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i)}}
			if i%2 == 0 {
				cm.Labels = map[string]string{"even": "true"}
			}
			if _, err := writer.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(watchers))
	for i, w := range watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := ""
			for n := 0; n < wants[i]; n++ {
				select {
				case ev := <-w.ResultChan():
					cm, ok := ev.Object.(*corev1.ConfigMap)
					if ev.Type != watch.Added || !ok {
						errs <- fmt.Errorf("watcher %d: event %s %T", i, ev.Type, ev.Object)
						return
					}
					if key := cm.Namespace + "/" + cm.Name; cm.Namespace == "fan" && key <= last {
						errs <- fmt.Errorf("watcher %d: %s after %s", i, key, last)
						return
					} else if cm.Namespace == "fan" {
						last = key
					}
				case <-ctx.Done():
					errs <- fmt.Errorf("watcher %d: %d of %d events", i, n, wants[i])
					return
				}
			}
			select {
			case ev := <-w.ResultChan():
				errs <- fmt.Errorf("watcher %d: extra event %s", i, ev.Type)
			case <-time.After(200 * time.Millisecond):
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, w := range watchers {
		w.Stop()
	}
	rafttest.Eventually(t, 10*time.Second, func() error {
		if n := c.Servers[1].SharedStreams(); n != 0 {
			return fmt.Errorf("%d shared streams after every watcher left", n)
		}
		return nil
	})
}
