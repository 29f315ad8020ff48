package apiserver_test

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

func svc(name string, typ corev1.ServiceType, ip string, nodePort int32) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
		Type: typ, ClusterIP: ip, Selector: map[string]string{"app": name},
		Ports: []corev1.ServicePort{{Port: 80, NodePort: nodePort}}}}
}

func wantInvalid(t *testing.T, err error, msg string) {
	t.Helper()
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("want 422 %q, got %v", msg, err)
	}
}

// TestServiceClusterIPsAndNodePorts: addresses and node ports come from their ranges, a
// requested one is honoured or refused with 422, a deleted Service releases them, an update
// keeps them, and a type change releases node ports.
func TestServiceClusterIPsAndNodePorts(t *testing.T) {
	c := apitest.Start(t, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svcs := c.Client(0).CoreV1().Services("default")
	cidr := netip.MustParsePrefix("10.96.0.0/16")

	a, err := svcs.Create(ctx, svc("a", "", "", 0), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(a.Spec.ClusterIP)
	if err != nil || !cidr.Contains(ip) || len(a.Spec.ClusterIPs) != 1 || a.Spec.ClusterIPs[0] != a.Spec.ClusterIP {
		t.Fatalf("allocated clusterIP %q (clusterIPs %v), want one in %s", a.Spec.ClusterIP, a.Spec.ClusterIPs, cidr)
	}
	if _, err := svcs.Create(ctx, svc("b", "", "10.96.7.7", 0), metav1.CreateOptions{}); err != nil {
		t.Fatalf("requested IP: %v", err)
	}
	_, err = svcs.Create(ctx, svc("b2", "", "10.96.7.7", 0), metav1.CreateOptions{})
	wantInvalid(t, err, "provided IP is already allocated")
	_, err = svcs.Create(ctx, svc("b3", "", "10.0.0.1", 0), metav1.CreateOptions{})
	wantInvalid(t, err, "provided IP is not in the valid range")
	_, err = svcs.Create(ctx, svc("b4", "", "not-an-ip", 0), metav1.CreateOptions{})
	wantInvalid(t, err, "must be a valid IP address")
	for _, n := range []string{"b2", "b3", "b4"} {
		if _, err := svcs.Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("refused service %s was written: %v", n, err)
		}
	}
	// Deleting releases the address.
	if err := svcs.Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Create(ctx, svc("b5", "", "10.96.7.7", 0), metav1.CreateOptions{}); err != nil {
		t.Fatalf("the address of a deleted service: %v", err)
	}
	// Headless and ExternalName hold no address.
	h, err := svcs.Create(ctx, svc("headless", "", corev1.ClusterIPNone, 0), metav1.CreateOptions{})
	if err != nil || h.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Fatalf("headless: %v %v", h, err)
	}
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}
	if e, err := svcs.Create(ctx, ext, metav1.CreateOptions{}); err != nil || e.Spec.ClusterIP != "" {
		t.Fatalf("externalName: %v %v", e, err)
	}

	// Node ports.
	np, err := svcs.Create(ctx, svc("np", corev1.ServiceTypeNodePort, "", 0), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := np.Spec.Ports[0].NodePort; p < 30000 || p > 32767 {
		t.Fatalf("allocated nodePort %d", p)
	}
	_, err = svcs.Create(ctx, svc("np2", corev1.ServiceTypeNodePort, "", np.Spec.Ports[0].NodePort), metav1.CreateOptions{})
	wantInvalid(t, err, "provided port is already allocated")
	_, err = svcs.Create(ctx, svc("np3", corev1.ServiceTypeNodePort, "", 80), metav1.CreateOptions{})
	wantInvalid(t, err, "provided port is not in the valid range")
	// An update that leaves the values out keeps them.
	np.Spec.ClusterIP, np.Spec.ClusterIPs, np.Spec.Ports[0].NodePort = "", nil, 0
	np.Labels = map[string]string{"x": "y"}
	up, err := svcs.Update(ctx, np, metav1.UpdateOptions{})
	if err != nil || up.Spec.ClusterIP == "" || up.Spec.Ports[0].NodePort == 0 {
		t.Fatalf("update without the values: %v %v", up, err)
	}
	// Changing the type to ClusterIP releases the node port for others.
	port := up.Spec.Ports[0].NodePort
	up.Spec.Type = corev1.ServiceTypeClusterIP
	if up, err = svcs.Update(ctx, up, metav1.UpdateOptions{}); err != nil || up.Spec.Ports[0].NodePort != 0 {
		t.Fatalf("type to ClusterIP: %v %v", up, err)
	}
	if _, err := svcs.Create(ctx, svc("np4", corev1.ServiceTypeNodePort, "", port), metav1.CreateOptions{}); err != nil {
		t.Fatalf("a released node port: %v", err)
	}
}

// TestServiceIPsAreUniqueAcrossServers: Services created at once through three servers from
// a small range all get different addresses, and when the range is full the next is refused.
func TestServiceIPsAreUniqueAcrossServers(t *testing.T) {
	c := apitest.Start(t, 3, apitest.Options{ServiceCIDR: "10.97.0.0/27"}) // 30 usable, the first kept
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 29
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ips := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(cl kubernetes.Interface, i int) {
			defer wg.Done()
			s, err := cl.CoreV1().Services("default").Create(ctx, svc("s"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "", "", 0), metav1.CreateOptions{})
			if err != nil {
				errs <- err
				return
			}
			ips <- s.Spec.ClusterIP
		}(c.Client(i%3), i)
	}
	wg.Wait()
	close(errs)
	close(ips)
	for err := range errs {
		t.Fatalf("create: %v", err)
	}
	seen := map[string]bool{}
	for ip := range ips {
		if seen[ip] {
			t.Fatalf("address %s handed out twice", ip)
		}
		seen[ip] = true
	}
	_, err := c.Client(1).CoreV1().Services("default").Create(ctx, svc("full", "", "", 0), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "range is full") {
		t.Fatalf("a create with the range full: want refused, got %v", err)
	}
}
