package apiserver_test

import (
	"context"
	"fmt"
	"strings"
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

// TestLateWatchersReadTheSharedBacklog: watches that start from a resourceVersion well in the
// past, while a shared stream runs, get every event after it, in order and with the objects
// as written: one from further back than a subscriber may queue (more events than its
// buffer), one from further back than the stream keeps decoded, and one from just before
// the newest.
func TestLateWatchersReadTheSharedBacklog(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := c.Client(0)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := cs.CoreV1().ConfigMaps("late").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The first watcher keeps the shared stream running while the writes go on.
	keep, err := cs.CoreV1().ConfigMaps("late").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Stop()
	go func() {
		for range keep.ResultChan() {
		}
	}()
	const writes = 2200
	rvs := make([]string, writes) // the resourceVersion each create returned
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < writes; i += 16 {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%04d", i)}, Data: map[string]string{"i": fmt.Sprint(i)}}
				got, err := cs.CoreV1().ConfigMaps("late").Create(ctx, cm, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
				rvs[i] = got.ResourceVersion
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	byRV := map[string]int{}
	for i, rv := range rvs {
		byRV[rv] = i
	}
	for _, from := range []string{list.ResourceVersion, fmt.Sprint(mustInt(t, list.ResourceVersion) + writes - 700), fmt.Sprint(mustInt(t, list.ResourceVersion) + writes - 3)} {
		w, err := cs.CoreV1().ConfigMaps("late").Watch(ctx, metav1.ListOptions{ResourceVersion: from})
		if err != nil {
			t.Fatal(err)
		}
		last := mustInt(t, from)
		want := 0
		for _, rv := range rvs {
			if mustInt(t, rv) > last {
				want++
			}
		}
		for n := 0; n < want; n++ {
			select {
			case ev := <-w.ResultChan():
				cm, ok := ev.Object.(*corev1.ConfigMap)
				if ev.Type != watch.Added || !ok {
					t.Fatalf("from %s: event %d: %s %T", from, n, ev.Type, ev.Object)
				}
				rv := mustInt(t, cm.ResourceVersion)
				i, known := byRV[cm.ResourceVersion]
				if rv <= last || !known || cm.Name != fmt.Sprintf("cm-%04d", i) || cm.Data["i"] != fmt.Sprint(i) {
					t.Fatalf("from %s: event %d: %s at %s (%v) after %d", from, n, cm.Name, cm.ResourceVersion, cm.Data, last)
				}
				last = rv
			case <-ctx.Done():
				t.Fatalf("from %s: %d of %d events", from, n, want)
			}
		}
		w.Stop()
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWatchListSendsTheMatchingInitialState: a watch asking for the initial events (client-go's
// watch-list) gets every object matching its selector as ADDED, each once with its
// resourceVersion, then the bookmark that ends them, then later changes.
func TestWatchListSendsTheMatchingInitialState(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client(0)
	want := map[string]string{} // name -> resourceVersion, of the labelled ones
	for i := range 30 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i)}, Data: map[string]string{"i": fmt.Sprint(i)}}
		if i%3 == 0 {
			cm.Labels = map[string]string{"pick": "yes"}
		}
		got, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			want[got.Name] = got.ResourceVersion
		}
	}
	yes := true
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{LabelSelector: "pick=yes", SendInitialEvents: &yes,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	next := func() watch.Event {
		t.Helper()
		select {
		case ev := <-w.ResultChan():
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return watch.Event{}
	}
	seen := map[string]bool{}
	for len(seen) < len(want) {
		ev := next()
		cm, ok := ev.Object.(*corev1.ConfigMap)
		if ev.Type != watch.Added || !ok || want[cm.Name] != cm.ResourceVersion || seen[cm.Name] || cm.Labels["pick"] != "yes" {
			t.Fatalf("initial event %s %T %+v", ev.Type, ev.Object, ev.Object)
		}
		seen[cm.Name] = true
	}
	if ev := next(); ev.Type != watch.Bookmark || ev.Object.(*corev1.ConfigMap).Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Fatalf("after the initial events: %s %+v, want the bookmark that ends them", ev.Type, ev.Object)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late", Labels: map[string]string{"pick": "yes"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		ev := next()
		if ev.Type == watch.Bookmark {
			continue
		}
		if cm, ok := ev.Object.(*corev1.ConfigMap); ev.Type != watch.Added || !ok || cm.Name != "late" {
			t.Fatalf("after the bookmark: %s %+v", ev.Type, ev.Object)
		}
		break
	}
}

// TestSlowWatcherCatchesUp: a watcher that stops reading while thousands of events go by
// (more than the shared stream queues for it) still gets every one of them in order, with
// no 410, once it reads again.
func TestSlowWatcherCatchesUp(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := c.Client(0)
	list, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// 10 KiB each: the first few hundred fill the stream's flow-control window, after which
	// the server's queue for this watcher fills and overflows.
	const writes = 3000
	pad := strings.Repeat("x", 10<<10)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < writes; i += 16 {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%04d", i)}, Data: map[string]string{"pad": pad}}
				if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	last := int64(0)
	for len(seen) < writes {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed after %d of %d events", len(seen), writes)
			}
			cm, isCM := ev.Object.(*corev1.ConfigMap)
			if ev.Type != watch.Added || !isCM {
				t.Fatalf("after %d events: %s %+v", len(seen), ev.Type, ev.Object)
			}
			rv := mustInt(t, cm.ResourceVersion)
			if rv <= last || seen[cm.Name] {
				t.Fatalf("%s at %d after %d", cm.Name, rv, last)
			}
			seen[cm.Name], last = true, rv
		case <-ctx.Done():
			t.Fatalf("%d of %d events", len(seen), writes)
		}
	}
}
