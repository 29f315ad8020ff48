package controllers_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// TestEndpointSlicesAndEndpointsFollowPods: a Service's EndpointSlice and Endpoints list its
// pods' addresses with the named target port resolved, follow readiness and deletion, and go
// when the Service goes; Endpoints of a Service without a selector are left alone.
func TestEndpointSlicesAndEndpointsFollowPods(t *testing.T) {
	c := startControlPlane(t, []string{"endpointslice", "endpoint", "garbagecollector"}, framework.Options{})
	ctx, cl := c.ctx, c.client
	pods := cl.CoreV1().Pods("default")
	setStatus := func(name, ip string, ready bool) {
		t.Helper()
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status.Phase, p.Status.PodIP = corev1.PodRunning, ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
		if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "x",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		setStatus(p.Name, fmt.Sprintf("10.244.0.%d", i), true)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}}
	if _, err := cl.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// state is "ip:ready" per endpoint of the slices, and the Endpoints' ready/not-ready lists.
	state := func() (string, string, error) {
		sl, err := cl.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return "", "", err
		}
		var eps []string
		for _, s := range sl.Items {
			for _, p := range s.Ports {
				if *p.Port != 8080 {
					return "", "", fmt.Errorf("slice port %d, want the named port resolved to 8080", *p.Port)
				}
			}
			for _, e := range s.Endpoints {
				eps = append(eps, fmt.Sprintf("%s:%v", e.Addresses[0], *e.Conditions.Ready))
			}
		}
		sort.Strings(eps)
		ep, err := cl.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return strings.Join(eps, ","), "", err
		}
		var ready, notReady []string
		for _, s := range ep.Subsets {
			for _, a := range s.Addresses {
				ready = append(ready, a.IP)
			}
			for _, a := range s.NotReadyAddresses {
				notReady = append(notReady, a.IP)
			}
		}
		sort.Strings(ready)
		sort.Strings(notReady)
		return strings.Join(eps, ","), strings.Join(ready, ",") + "|" + strings.Join(notReady, ","), nil
	}
	expect := func(what, slices, endpoints string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() error {
			s, e, err := state()
			if err != nil {
				return err
			}
			if s != slices || e != endpoints {
				return fmt.Errorf("slices %q endpoints %q; want %q and %q", s, e, slices, endpoints)
			}
			return nil
		})
	}
	expect("three ready endpoints", "10.244.0.1:true,10.244.0.2:true,10.244.0.3:true", "10.244.0.1,10.244.0.2,10.244.0.3|")
	setStatus("web-2", "10.244.0.2", false)
	expect("a pod turns not ready", "10.244.0.1:true,10.244.0.2:false,10.244.0.3:true", "10.244.0.1,10.244.0.3|10.244.0.2")
	zero := int64(0)
	if err := pods.Delete(ctx, "web-3", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	expect("a pod deleted", "10.244.0.1:true,10.244.0.2:false", "10.244.0.1|10.244.0.2")

	// A Service without a selector: its hand-made Endpoints stay as written.
	manual := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "manual"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := cl.CoreV1().Services("default").Create(ctx, manual, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	handMade := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "manual"}, Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}}
	if _, err := cl.CoreV1().Endpoints("default").Create(ctx, handMade, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The Service deleted: its Endpoints and slices go.
	if err := cl.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "endpoints of a deleted service removed", func() error {
		sl, err := cl.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return err
		}
		if _, err := cl.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("endpoints: %v", err)
		}
		if len(sl.Items) > 0 {
			return fmt.Errorf("%d slices left", len(sl.Items))
		}
		return nil
	})
	ep, err := cl.CoreV1().Endpoints("default").Get(ctx, "manual", metav1.GetOptions{})
	if err != nil || len(ep.Subsets) != 1 || ep.Subsets[0].Addresses[0].IP != "192.0.2.1" {
		t.Fatalf("hand-made endpoints of a selector-less service changed: %v %v", ep, err)
	}
}
