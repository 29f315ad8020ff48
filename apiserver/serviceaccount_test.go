package apiserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestServiceAccountTokens: pods get the service account volume; a bound token authenticates
// as system:serviceaccount:<ns>:<name> with RBAC deciding, and stops working when its pod
// is deleted; bad requests and tampered tokens are refused; a node gets tokens only for its
// own pods.
func TestServiceAccountTokens(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := c.Client(0)
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	no := false
	mk := func(name, sa, node string, automount *bool) *corev1.Pod {
		p, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: node, AutomountServiceAccountToken: automount,
				Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := mk("p", "robot", "n1", nil)
	if len(p.Spec.Volumes) != 1 || !strings.HasPrefix(p.Spec.Volumes[0].Name, "kube-api-access-") || p.Spec.Volumes[0].Projected == nil ||
		len(p.Spec.Containers[0].VolumeMounts) != 1 || p.Spec.Containers[0].VolumeMounts[0].MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" {
		t.Fatalf("pod with a service account: volumes %+v mounts %+v", p.Spec.Volumes, p.Spec.Containers[0].VolumeMounts)
	}
	if q := mk("q", "robot", "n1", &no); len(q.Spec.Volumes) != 0 {
		t.Fatalf("automountServiceAccountToken=false still mounted: %+v", q.Spec.Volumes)
	}
	if d := mk("d", "", "n2", nil); d.Spec.ServiceAccountName != "default" {
		t.Fatalf("serviceAccountName defaulted to %q", d.Spec.ServiceAccountName)
	}

	request := func(cl kubernetes.Interface, sa, pod string, uid string, secs int64) (string, error) {
		tr, err := cl.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &secs, BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod, UID: k8stypes.UID(uid)}}}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return tr.Status.Token, nil
	}
	token, err := request(admin, "robot", "p", string(p.UID), 3600)
	if err != nil {
		t.Fatal(err)
	}
	as := func(tok string) kubernetes.Interface {
		rc := rest.AnonymousClientConfig(c.RESTConfig(2))
		rc.BearerToken = tok
		return kubernetes.NewForConfigOrDie(rc)
	}
	robot := as(token)
	if _, err := robot.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "system:serviceaccount:default:robot") {
		t.Fatalf("without a RoleBinding: want 403 naming the service account, got %v", err)
	}
	if _, err := admin.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "robot-view"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "robot", Namespace: "default"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for i := 0; i < 50; i++ {
		if _, lastErr = robot.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); lastErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("with a RoleBinding: %v", lastErr)
	}
	if _, err := as(token[:len(token)-4]+"AAAA").CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Fatalf("a tampered token: want 401, got %v", err)
	}
	if _, err := request(admin, "robot", "p", string(p.UID), 60); !apierrors.IsInvalid(err) {
		t.Fatalf("a 60s token: want 422, got %v", err)
	}
	if _, err := request(admin, "robot", "d", "", 3600); !apierrors.IsBadRequest(err) {
		t.Fatalf("a token for robot bound to a pod of another service account: want 400, got %v", err)
	}
	// A node asks for tokens of its own pods only.
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := kubernetes.NewForConfigOrDie(c.RESTConfigFor(1, c.PKI.ClientCert(t, "system:node:n1", "system:nodes")))
	if _, err := request(node, "robot", "p", "", 3600); err != nil {
		t.Fatalf("node n1, its own pod: %v", err)
	}
	if _, err := request(node, "default", "d", "", 3600); !apierrors.IsForbidden(err) {
		t.Fatalf("node n1, a pod of n2: want 403, got %v", err)
	}
	// The pod gone, its token no longer authenticates.
	zero := int64(0)
	if err := admin.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // stale reads on server 2 catch up
	if _, err := robot.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Fatalf("the token of a deleted pod: want 401, got %v", err)
	}
}
