package apiserver_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestClientGoCRUDAndWatchThroughAnotherNode writes through one node with client-go and
// follows the changes with a watch served by another node, in order and exactly once.
func TestClientGoCRUDAndWatchThroughAnotherNode(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	writer, reader := c.Client(0), c.Client(2)

	w, err := reader.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()

	cm, err := writer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "cfg-", Labels: map[string]string{"app": "x"}},
		Data:       map[string]string{"a": "1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if cm.UID == "" || cm.ResourceVersion == "" || cm.CreationTimestamp.IsZero() || len(cm.Name) != len("cfg-")+5 {
		t.Fatalf("create did not fill metadata: %+v", cm.ObjectMeta)
	}
	stale := cm.DeepCopy()
	cm.Data["a"] = "2"
	cm, err = writer.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	stale.Data["a"] = "3"
	if _, err := writer.CoreV1().ConfigMaps("default").Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update with a stale resourceVersion: want 409 Conflict, got %v", err)
	}
	if _, err := writer.CoreV1().ConfigMaps("default").Patch(ctx, cm.Name, types.MergePatchType, []byte(`{"data":{"b":"x"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("merge patch: %v", err)
	}
	got, err := reader.CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil || got.Data["a"] != "2" || got.Data["b"] != "x" {
		t.Fatalf("linearizable get through another node: %v %v", got.Data, err)
	}
	list, err := reader.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{LabelSelector: "app=x"})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list -A with a label selector: %v items, %v", len(list.Items), err)
	}
	if err := writer.CoreV1().ConfigMaps("default").Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := reader.CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: want 404, got %v", err)
	}

	want := []watch.EventType{watch.Added, watch.Modified, watch.Modified, watch.Deleted}
	var lastRV string
	for i, typ := range want {
		select {
		case ev := <-w.ResultChan():
			if ev.Type != typ {
				t.Fatalf("event %d: got %s, want %s", i, ev.Type, typ)
			}
			m := ev.Object.(*corev1.ConfigMap)
			if m.ResourceVersion <= lastRV && len(m.ResourceVersion) <= len(lastRV) {
				t.Fatalf("event %d: resourceVersion %s not after %s", i, m.ResourceVersion, lastRV)
			}
			lastRV = m.ResourceVersion
		case <-ctx.Done():
			t.Fatalf("event %d (%s) never came", i, typ)
		}
	}
	select {
	case ev := <-w.ResultChan():
		t.Fatalf("unexpected extra event %s", ev.Type)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestWatchFromCompactedRevisionIsGone: a watch from before the history gets 410 Expired.
func TestWatchFromCompactedRevisionIsGoneOrStarts(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := c.Client(0).CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: "1", TimeoutSeconds: ptr(int64(1))})
	if err != nil {
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			t.Fatalf("watch from revision 1: want 410 or a stream, got %v", err)
		}
		return
	}
	w.Stop()
}

func ptr[T any](v T) *T { return &v }

// TestConnectionsOutliveTheHandshakeTimeout keeps one client-go connection (a watch, then
// a write on the same HTTP/2 connection) in use past the servers' handshake timeout: the
// deadline net/http sets for the TLS handshake must not stay on the socket once cleared
// (it once did, and every API connection broke that long after it was opened).
func TestConnectionsOutliveTheHandshakeTimeout(t *testing.T) {
	const handshake = time.Second
	c := apitest.Start(t, 1, apitest.Options{HandshakeTimeout: handshake})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client(0)
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	time.Sleep(2*handshake + 500*time.Millisecond)
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create after the handshake timeout: %v", err)
	}
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("the watch ended instead of delivering the create")
		}
		if cm, isCM := ev.Object.(*corev1.ConfigMap); ev.Type != watch.Added || !isCM || cm.Name != "late" {
			t.Fatalf("watch delivered %s %T, want ADDED of configmap late", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
}
