package controllers_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// TestNamespacesGetDefaultServiceAccountAndRootCA: every namespace, old or new, gets the
// "default" ServiceAccount and the kube-root-ca.crt ConfigMap with the cluster CA, and
// both come back when deleted.
func TestNamespacesGetDefaultServiceAccountAndRootCA(t *testing.T) {
	c := startControlPlane(t, []string{"serviceaccount", "root-ca-cert-publisher"}, framework.Options{})
	ctx, cl := c.ctx, c.client
	if _, err := cl.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ca := string(c.cp.RESTConfig(0).TLSClientConfig.CAData)
	check := func() error {
		for _, ns := range []string{"default", "kube-system", "team"} {
			if _, err := cl.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return fmt.Errorf("%s: %v", ns, err)
			}
			cm, err := cl.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("%s: %v", ns, err)
			}
			if cm.Data["ca.crt"] != ca {
				return fmt.Errorf("%s: kube-root-ca.crt does not hold the cluster CA", ns)
			}
		}
		return nil
	}
	eventually(t, 20*time.Second, "default service accounts and root CAs", check)
	if err := cl.CoreV1().ServiceAccounts("team").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cl.CoreV1().ConfigMaps("team").Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "recreated after deletion", check)
	// An edited copy is put back (the publisher watches these ConfigMaps by name only).
	cm, err := cl.CoreV1().ConfigMaps("team").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"ca.crt": "not the CA"}
	if _, err := cl.CoreV1().ConfigMaps("team").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "restored after an edit", check)
}
