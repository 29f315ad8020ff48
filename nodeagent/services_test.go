package nodeagent

import (
	"context"
	"net"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestResolvConfByDNSPolicy(t *testing.T) {
	host := []byte("# host\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")
	dnsIP := net.ParseIP("10.244.1.1")
	pod := func(policy corev1.DNSPolicy, hostNet bool, cfg *corev1.PodDNSConfig) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team"},
			Spec: corev1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: cfg}}
	}
	cluster := "search team.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.244.1.1\noptions ndots:5\n"
	node := "search corp.example\nnameserver 192.0.2.53\noptions edns0\n"
	two := "2"
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		ip   net.IP
		want string
	}{
		{"default policy is ClusterFirst", pod("", false, nil), dnsIP, cluster},
		{"ClusterFirst", pod(corev1.DNSClusterFirst, false, nil), dnsIP, cluster},
		{"ClusterFirst without cluster DNS", pod(corev1.DNSClusterFirst, false, nil), nil, node},
		{"ClusterFirst on the host network", pod(corev1.DNSClusterFirst, true, nil), dnsIP, node},
		{"ClusterFirstWithHostNet", pod(corev1.DNSClusterFirstWithHostNet, true, nil), dnsIP, cluster},
		{"Default", pod(corev1.DNSDefault, false, nil), dnsIP, node},
		{"None with dnsConfig", pod(corev1.DNSNone, false, &corev1.PodDNSConfig{
			Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.example"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "rotate"}},
		}), dnsIP, "search a.example\nnameserver 1.1.1.1\noptions ndots:2 rotate\n"},
		{"ClusterFirst with dnsConfig", pod(corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}},
		}), dnsIP, strings.Replace(cluster, "ndots:5", "ndots:2", 1)},
	} {
		if got := string(resolvConf(tc.pod, host, tc.ip, "cluster.local")); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
}

func TestServiceEnvVarsAsKubelet(t *testing.T) {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "my-web"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
			{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP},
		}},
	}
	var got []string
	for _, e := range serviceEnvVars(s) {
		got = append(got, e.name+"="+e.value)
	}
	want := []string{
		"MY_WEB_SERVICE_HOST=10.96.0.10",
		"MY_WEB_SERVICE_PORT=80",
		"MY_WEB_SERVICE_PORT_HTTP=80",
		"MY_WEB_SERVICE_PORT_DNS_UDP=53",
		"MY_WEB_PORT=tcp://10.96.0.10:80",
		"MY_WEB_PORT_80_TCP=tcp://10.96.0.10:80",
		"MY_WEB_PORT_80_TCP_PROTO=tcp",
		"MY_WEB_PORT_80_TCP_PORT=80",
		"MY_WEB_PORT_80_TCP_ADDR=10.96.0.10",
		"MY_WEB_PORT_53_UDP=udp://10.96.0.10:53",
		"MY_WEB_PORT_53_UDP_PROTO=udp",
		"MY_WEB_PORT_53_UDP_PORT=53",
		"MY_WEB_PORT_53_UDP_ADDR=10.96.0.10",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("env:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestServiceEnvSeesItsNamespaceAndTheAPIService(t *testing.T) {
	client := fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "https", Port: 443}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "web"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Port: 80}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "headless"},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Port: 80}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "db"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.20", Ports: []corev1.ServicePort{{Port: 5432}}}},
	)
	a := &Agent{cfg: Config{Client: client}}
	a.svc = newSvcWatch(a)
	names := func(links *bool) string {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team"}, Spec: corev1.PodSpec{EnableServiceLinks: links}}
		env, err := a.serviceEnv(context.Background(), pod)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range env {
			if strings.HasSuffix(e.name, "_SERVICE_HOST") {
				out = append(out, e.name+"="+e.value)
			}
		}
		return strings.Join(out, " ")
	}
	if got := names(nil); got != "KUBERNETES_SERVICE_HOST=10.96.0.1 WEB_SERVICE_HOST=10.96.0.10" {
		t.Errorf("enableServiceLinks unset: %s", got)
	}
	off := false
	if got := names(&off); got != "KUBERNETES_SERVICE_HOST=10.96.0.1" {
		t.Errorf("enableServiceLinks false: %s", got)
	}
}
