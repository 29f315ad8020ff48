package nodeagent

import (
	"context"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The cache answers with the object as it is now: an edit and a deletion made after the
// first read show in later reads, and a missing object is NotFound, as a GET would say.
func TestObjectCacheFollowsTheObject(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"k": "v1"}})
	c := newObjectCache(client)
	c.start(ctx)

	cm, err := c.configMap(ctx, "pod-a", "ns", "cfg")
	if err != nil || cm.Data["k"] != "v1" {
		t.Fatalf("first read: %v %v", cm, err)
	}
	if _, err := c.secret(ctx, "pod-a", "ns", "missing"); !apierrors.IsNotFound(err) {
		t.Fatalf("missing secret: %v, want NotFound", err)
	}
	if _, err := client.CoreV1().ConfigMaps("ns").Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"k": "v2"}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the edit", func() (bool, string) {
		cm, err := c.configMap(ctx, "pod-b", "ns", "cfg")
		if err != nil {
			return false, err.Error()
		}
		return cm.Data["k"] == "v2", cm.Data["k"]
	})
	if err := client.CoreV1().ConfigMaps("ns").Delete(ctx, "cfg", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the deletion", func() (bool, string) {
		_, err := c.configMap(ctx, "pod-b", "ns", "cfg")
		return apierrors.IsNotFound(err), ""
	})
	// Once no pod reads it, the object is no longer watched.
	c.release("pod-a")
	c.release("pod-b")
	c.mu.Lock()
	left := len(c.items)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d objects still watched after every pod released them", left)
	}
}

// A pod's token is reused until 80 % of its lifetime has passed, as the kubelet rotates it,
// and never given to another pod.
func TestTokenCacheRotatesAt80Percent(t *testing.T) {
	c := newTokenCache()
	now := time.Now()
	k := tokenKey{uid: "pod-a", sa: "default", expirationSeconds: 3600}
	tr := &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{Token: "t1", ExpirationTimestamp: metav1.NewTime(now.Add(time.Hour))}}
	c.put(k, tr, now)
	if got := c.get(k, now.Add(47*time.Minute)); got == nil || got.Status.Token != "t1" {
		t.Errorf("at 47 of 60 minutes: %v, want the cached token", got)
	}
	if got := c.get(k, now.Add(49*time.Minute)); got != nil {
		t.Errorf("at 49 of 60 minutes: %v, want none (rotate)", got)
	}
	other := k
	other.uid = "pod-b"
	if got := c.get(other, now); got != nil {
		t.Errorf("another pod got %v", got)
	}
	c.forget("pod-a")
	if got := c.get(k, now); got != nil {
		t.Errorf("after forget: %v", got)
	}
}
