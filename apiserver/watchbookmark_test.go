package apiserver_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestBookmarkBeforeTheWatchTimesOut: a filtered watch that asked for bookmarks gets one
// shortly before its timeoutSeconds end (well before the 30 s bookmark interval), carrying
// a revision at least as new as the writes it skipped, so that the client's next watch
// resumes from a recent revision instead of one the store's history may have dropped.
func TestBookmarkBeforeTheWatchTimesOut(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client(0)
	list, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	timeout := int64(4)
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion,
		FieldSelector: "metadata.name=watched", AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	other, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	skippedRV, _ := strconv.ParseInt(other.ResourceVersion, 10, 64)
	var bookmarks []int64
	for ev := range w.ResultChan() {
		if ev.Type != watch.Bookmark {
			t.Fatalf("unexpected %s event: the watched object was never written", ev.Type)
		}
		rv, err := strconv.ParseInt(ev.Object.(*corev1.ConfigMap).ResourceVersion, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		bookmarks = append(bookmarks, rv)
	}
	if ctx.Err() != nil {
		t.Fatal("the watch did not end at its timeoutSeconds")
	}
	if len(bookmarks) == 0 {
		t.Fatal("no bookmark before the watch's timeout")
	}
	if last := bookmarks[len(bookmarks)-1]; last < skippedRV {
		t.Fatalf("bookmark at revision %d, older than the skipped write at %d", last, skippedRV)
	}
}
