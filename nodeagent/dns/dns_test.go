package dns

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func ptr[T any](v T) *T { return &v }

// upstream is a resolver for names outside the cluster: it answers every A
// question with 192.0.2.1.
func upstream(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = []mdns.RR{&mdns.A{Hdr: hdr(r.Question[0].Name, mdns.TypeA), A: net.IPv4(192, 0, 2, 1)}}
		_ = w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func startServer(t *testing.T) string {
	t.Helper()
	client := fake.NewClientset(
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
			}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{
				{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP},
			}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "db-1", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("pg"), Port: ptr[int32](5433), Protocol: ptr(corev1.ProtocolTCP)}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.244.1.5"}, Hostname: ptr("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
				{Addresses: []string{"10.244.2.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
				{Addresses: []string{"10.244.2.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
			},
		},
	)
	inf := informers.NewSharedInformerFactory(client, 0)
	s, err := New(Config{Informers: inf, Upstreams: []string{upstream(t)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	inf.Start(ctx.Done())
	// The same port for UDP and TCP: a free UDP port may be taken for TCP (by any
	// connection's local end), so try again with another.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try == 20 {
				t.Fatal(err)
			}
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx, pc, ln) }()
	t.Cleanup(func() { cancel(); <-done; inf.Shutdown() })
	return pc.LocalAddr().String()
}

// query asks addr and returns the rcode and the answers' values.
func query(t *testing.T, addr, transport, name string, qtype uint16) (int, []string) {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: transport, Timeout: 2 * time.Second}
	var resp *mdns.Msg
	var err error
	for range 50 { // the server may still be syncing its informers
		if resp, _, err = c.Exchange(m, addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	var out []string
	for _, rr := range resp.Answer {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(f[3:], " "))
	}
	slices.Sort(out)
	return resp.Rcode, out
}

func TestClusterNames(t *testing.T) {
	addr := startServer(t)
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"web.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.96.0.10"}},
		{"WEB.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.96.0.10"}},
		{"web.default.svc.cluster.local.", mdns.TypeAAAA, mdns.RcodeSuccess, nil},
		{"db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.244.1.5", "A 10.244.2.6"}},
		{"db-0.db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.244.1.5"}},
		{"_http._tcp.web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, []string{"SRV 0 100 80 web.default.svc.cluster.local."}},
		{"_pg._tcp.db.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, []string{
			"SRV 0 100 5433 10-244-2-6.db.default.svc.cluster.local.", "SRV 0 100 5433 db-0.db.default.svc.cluster.local.",
		}},
		{"ext.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"CNAME example.com."}},
		{"10.0.96.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeSuccess, []string{"PTR web.default.svc.cluster.local."}},
		{"5.1.244.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeSuccess, []string{"PTR db-0.db.default.svc.cluster.local."}},
		{"10-244-1-5.default.pod.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.244.1.5"}},
		{"dns-version.cluster.local.", mdns.TypeTXT, mdns.RcodeSuccess, []string{"TXT \"1.1.0\""}},
		{"nope.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"web.other.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"web.default.svc.cluster.local.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"x-2.db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"_nope._tcp.web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeNameError, nil},
		{"example.com.", mdns.TypeA, mdns.RcodeSuccess, []string{"A 192.0.2.1"}},
	} {
		for _, transport := range []string{"udp", "tcp"} {
			rcode, got := query(t, addr, transport, tc.name, tc.qtype)
			if rcode != tc.rcode || !slices.Equal(got, tc.want) {
				t.Errorf("%s %s %s: rcode %s %q, want %s %q", transport, tc.name, mdns.TypeToString[tc.qtype],
					mdns.RcodeToString[rcode], got, mdns.RcodeToString[tc.rcode], tc.want)
			}
		}
	}
}
