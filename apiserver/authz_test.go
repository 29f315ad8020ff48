package apiserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestAuthorizationMatrix checks who may do what: an admin, a node on its own and on another
// node's objects, an anonymous caller, and a user holding a namespaced Role. Every case is
// checked twice, once by doing it and once by asking (SelfSubjectAccessReview), and the two
// answers must agree.
func TestAuthorizationMatrix(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := c.Client(0)
	clientFor := func(cert *apitest.Cert) *kubernetes.Clientset {
		cs, err := kubernetes.NewForConfig(c.RESTConfigFor(1, cert))
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	node1 := clientFor(c.PKI.ClientCert(t, "system:node:n1", "system:nodes"))
	alice := clientFor(c.PKI.ClientCert(t, "alice"))
	anon, err := kubernetes.NewForConfig(&rest.Config{Host: c.URLs[1], TLSClientConfig: rest.TLSClientConfig{CAData: c.PKI.CAPEM}})
	if err != nil {
		t.Fatal(err)
	}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{})
	must(err)
	for _, n := range []string{"n1", "n2"} {
		_, err = admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		must(err)
		_, err = admin.CoordinationV1().Leases("kube-node-lease").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		must(err)
		_, err = admin.CoreV1().Pods("team").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "on-" + n},
			Spec: corev1.PodSpec{NodeName: n, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		must(err)
	}
	_, err = admin.RbacV1().Roles("team").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "pods/log", "pods/exec"}, Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{})
	must(err)
	_, err = admin.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice-reads"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}}}, metav1.CreateOptions{})
	must(err)

	type attempt struct {
		name  string
		who   *kubernetes.Clientset
		attrs authorizationv1.ResourceAttributes
		do    func(cs *kubernetes.Clientset) error
		allow bool
	}
	statusUpdate := func(pod string) func(cs *kubernetes.Clientset) error {
		return func(cs *kubernetes.Clientset) error {
			p, err := admin.CoreV1().Pods("team").Get(ctx, pod, metav1.GetOptions{})
			if err != nil {
				return err
			}
			p.Status.Phase = corev1.PodRunning
			_, err = cs.CoreV1().Pods("team").UpdateStatus(ctx, p, metav1.UpdateOptions{})
			return err
		}
	}
	leaseUpdate := func(name string) func(cs *kubernetes.Clientset) error {
		return func(cs *kubernetes.Clientset) error {
			l, err := admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			l.Spec.HolderIdentity = &name
			_, err = cs.CoordinationV1().Leases("kube-node-lease").Update(ctx, l, metav1.UpdateOptions{})
			return err
		}
	}
	listPods := func(ns string) func(cs *kubernetes.Clientset) error {
		return func(cs *kubernetes.Clientset) error {
			_, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err
		}
	}
	createCM := func(ns string) func(cs *kubernetes.Clientset) error {
		return func(cs *kubernetes.Clientset) error {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "m-"}}, metav1.CreateOptions{})
			return err
		}
	}
	pods := func(verb, ns, name, sub string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Resource: "pods", Namespace: ns, Name: name, Subresource: sub}
	}
	lease := func(name string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-node-lease", Name: name}
	}
	cms := func(ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: "create", Resource: "configmaps", Namespace: ns}
	}
	cases := []attempt{
		{"admin lists pods", admin, pods("list", "team", "", ""), listPods("team"), true},
		{"admin creates configmaps", admin, cms("team"), createCM("team"), true},
		{"node updates the status of its own pod", node1, pods("update", "team", "on-n1", "status"), statusUpdate("on-n1"), true},
		{"node updates the status of another node's pod", node1, pods("update", "team", "on-n2", "status"), statusUpdate("on-n2"), false},
		{"node renews its own lease", node1, lease("n1"), leaseUpdate("n1"), true},
		{"node renews another node's lease", node1, lease("n2"), leaseUpdate("n2"), false},
		{"node lists pods", node1, pods("list", "team", "", ""), listPods("team"), true},
		{"node creates configmaps", node1, cms("team"), createCM("team"), false},
		{"alice lists pods in team", alice, pods("list", "team", "", ""), listPods("team"), true},
		{"alice lists pods in default", alice, pods("list", "default", "", ""), listPods("default"), false},
		{"alice creates configmaps in team", alice, cms("team"), createCM("team"), false},
	}
	for _, tc := range cases {
		err := tc.do(tc.who)
		if tc.allow && err != nil {
			t.Errorf("%s: want allowed, got %v", tc.name, err)
		}
		if !tc.allow && !apierrors.IsForbidden(err) {
			t.Errorf("%s: want 403 Forbidden, got %v", tc.name, err)
		}
		attrs := tc.attrs
		rev, err := tc.who.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}, metav1.CreateOptions{})
		if err != nil {
			t.Errorf("%s: SelfSubjectAccessReview: %v", tc.name, err)
			continue
		}
		if rev.Status.Allowed != tc.allow {
			t.Errorf("%s: SelfSubjectAccessReview says allowed=%v (%s), want %v", tc.name, rev.Status.Allowed, rev.Status.Reason, tc.allow)
		}
	}

	// Anonymous callers get 401, for requests and for reviews alike.
	if _, err := anon.CoreV1().Pods("team").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("anonymous list: want 401, got %v", err)
	}
	if _, err := anon.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods"}}}, metav1.CreateOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("anonymous review: want 401, got %v", err)
	}

	// An admin may ask about someone else (SubjectAccessReview); alice may not.
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice",
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods", Namespace: "team", Name: "on-n1"}}}
	got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil || !got.Status.Allowed {
		t.Errorf("admin SubjectAccessReview for alice: %+v %v", got, err)
	}
	sar.Spec.ResourceAttributes.Namespace = "default"
	if got, err = admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{}); err != nil || got.Status.Allowed {
		t.Errorf("admin SubjectAccessReview for alice in default: %+v %v", got, err)
	}
	if _, err := alice.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice SubjectAccessReview: want 403, got %v", err)
	}

	// A websocket exec is a GET that needs create as well: alice's get on pods/exec is not enough.
	execReq := func(cs *kubernetes.Clientset) error {
		return cs.CoreV1().RESTClient().Get().Namespace("team").Resource("pods").Name("on-n1").SubResource("exec").
			Param("command", "sh").Param("stdout", "true").Do(ctx).Error()
	}
	if err := execReq(alice); !apierrors.IsForbidden(err) {
		t.Errorf("alice GET pods/exec with only get: want 403, got %v", err)
	}
	if err := execReq(admin); apierrors.IsForbidden(err) || err == nil {
		t.Errorf("admin GET pods/exec (node n1 has no address): want a non-403 error, got %v", err)
	}

	// The real kubectl auth can-i, as admin and as alice.
	if _, err := os.Stat(kubectlBin); err != nil {
		return
	}
	mustKubectl(t, c.Kubeconfig(2), "", "yes", "auth", "can-i", "delete", "nodes")
	aliceCfg := userKubeconfig(t, c, 2, c.PKI.ClientCert(t, "alice"))
	mustKubectl(t, aliceCfg, "", "yes", "auth", "can-i", "get", "pods", "-n", "team")
	if out, err := kubectl(t, aliceCfg, "", "auth", "can-i", "get", "pods", "-n", "default"); err == nil || !strings.HasPrefix(out, "no") {
		t.Errorf("kubectl auth can-i get pods -n default as alice: want no (exit 1), got %q %v", out, err)
	}
	mustKubectl(t, aliceCfg, "", "yes", "auth", "can-i", "get", "pods", "--subresource=log", "-n", "team")
}

// userKubeconfig writes a kubeconfig for node i authenticating with cert.
func userKubeconfig(t *testing.T, c *apitest.Cluster, i int, cert *apitest.Cert) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{"ca.crt": c.PKI.CAPEM, "u.crt": cert.CertPEM, "u.key": cert.KeyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster: {server: %q, certificate-authority: %q}
users:
- name: u
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: skiff
  context: {cluster: skiff, user: u, namespace: default}
current-context: skiff
`, c.URLs[i], filepath.Join(dir, "ca.crt"), filepath.Join(dir, "u.crt"), filepath.Join(dir, "u.key"))
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
