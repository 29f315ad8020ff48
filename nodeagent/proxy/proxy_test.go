package proxy

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/knftables"
)

func svc(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: ip, Ports: ports, Type: corev1.ServiceTypeClusterIP},
	}
}

func slice(ns, svcName, portName string, port int32, proto corev1.Protocol, ips ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svcName + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, ip := range ips {
		ready := !strings.HasPrefix(ip, "!")
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{strings.TrimPrefix(ip, "!")},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return s
}

type recordingNFT struct {
	*knftables.Fake
	mu  sync.Mutex
	txs []string
}

func (r *recordingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	r.mu.Lock()
	r.txs = append(r.txs, tx.String())
	r.mu.Unlock()
	return r.Fake.Run(ctx, tx)
}

func (r *recordingNFT) last() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.txs) == 0 {
		return "", 0
	}
	return r.txs[len(r.txs)-1], len(r.txs)
}

type fakeConntrack struct {
	mu      sync.Mutex
	cleared []string
}

func (f *fakeConntrack) ClearUDP(dst string, port int32, ep string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleared = append(f.cleared, dst+":"+itoa(port)+">"+ep)
	return nil
}

// startProxier runs a Proxier on a fake clientset and a fake nft.
func startProxier(t *testing.T, objs ...any) (*fake.Clientset, *recordingNFT, *fakeConntrack) {
	t.Helper()
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	for _, o := range objs {
		if err := client.Tracker().Add(o.(runtime.Object)); err != nil {
			t.Fatal(err)
		}
	}
	nft := &recordingNFT{Fake: knftables.NewFake(knftables.IPv4Family, TableName)}
	ct := &fakeConntrack{}
	inf := informers.NewSharedInformerFactory(client, 0)
	p, err := New(Config{NFT: nft, Informers: inf, ClusterCIDR: "10.244.0.0/16", Conntrack: ct, MinSyncPeriod: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inf.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; inf.Shutdown() })
	return client, nft, ct
}

// waitTx waits for the n-th transaction and returns it.
func waitTx(t *testing.T, nft *recordingNFT, n int) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if tx, got := nft.last(); got >= n {
			return tx
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("transaction %d never came", n)
	return ""
}

func tcp(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: corev1.ProtocolTCP}
}

func TestFirstSyncReplacesTableWithAllServices(t *testing.T) {
	_, nft, _ := startProxier(t,
		svc("ns1", "web", "10.96.0.10", tcp("http", 80)),
		slice("ns1", "web", "http", 8080, corev1.ProtocolTCP, "10.244.1.2", "10.244.2.3", "!10.244.2.4"),
		svc("ns1", "empty", "10.96.0.11", tcp("", 80)),
	)
	tx := waitTx(t, nft, 1)
	first := strings.SplitN(tx, "\n", 3)
	if first[0] != "add table ip skiff-proxy { comment \"skiff service proxy\" ; }" && !strings.HasPrefix(first[0], "add table ip skiff-proxy") {
		t.Fatalf("transaction does not start by adding the table:\n%s", tx)
	}
	if first[1] != "delete table ip skiff-proxy" {
		t.Fatalf("transaction does not replace the table:\n%s", tx)
	}
	dump := nft.Dump()
	web := serviceChain(portName{"ns1", "web", "http", corev1.ProtocolTCP})
	ep1 := endpointChain(portName{"ns1", "web", "http", corev1.ProtocolTCP}, endpoint{"10.244.1.2", 8080})
	ep2 := endpointChain(portName{"ns1", "web", "http", corev1.ProtocolTCP}, endpoint{"10.244.2.3", 8080})
	for _, want := range []string{
		"add element ip skiff-proxy service-ips { 10.96.0.10 . tcp . 80 : goto " + web + " }",
		"add rule ip skiff-proxy " + web + " ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
		"add rule ip skiff-proxy " + web + " numgen random mod 2 vmap { 0 : goto " + ep1 + " , 1 : goto " + ep2 + " }",
		"add rule ip skiff-proxy " + ep1 + " ip saddr 10.244.1.2 jump mark-for-masquerade",
		"add rule ip skiff-proxy " + ep1 + " meta l4proto tcp dnat to 10.244.1.2:8080",
		"add element ip skiff-proxy no-endpoint-services { 10.96.0.11 . tcp . 80 : goto reject-chain }",
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("missing %q in\n%s", want, dump)
		}
	}
	if strings.Contains(dump, "10.244.2.4") {
		t.Errorf("a not-ready endpoint is programmed:\n%s", dump)
	}
}

func TestEndpointChangeTouchesOnlyItsService(t *testing.T) {
	client, nft, _ := startProxier(t,
		svc("ns1", "a", "10.96.0.10", tcp("", 80)),
		slice("ns1", "a", "", 8080, corev1.ProtocolTCP, "10.244.1.2"),
		svc("ns1", "b", "10.96.0.20", tcp("", 80)),
		slice("ns1", "b", "", 8080, corev1.ProtocolTCP, "10.244.1.5"),
	)
	waitTx(t, nft, 1)
	s := slice("ns1", "a", "", 8080, corev1.ProtocolTCP, "10.244.1.2", "10.244.1.3")
	if _, err := client.DiscoveryV1().EndpointSlices("ns1").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	tx := waitTx(t, nft, 2)
	pa := portName{"ns1", "a", "", corev1.ProtocolTCP}
	want := strings.Join([]string{
		"add chain ip skiff-proxy " + endpointChain(pa, endpoint{"10.244.1.3", 8080}),
		"add rule ip skiff-proxy " + endpointChain(pa, endpoint{"10.244.1.3", 8080}) + " ip saddr 10.244.1.3 jump mark-for-masquerade",
		"add rule ip skiff-proxy " + endpointChain(pa, endpoint{"10.244.1.3", 8080}) + " meta l4proto tcp dnat to 10.244.1.3:8080",
		"flush chain ip skiff-proxy " + serviceChain(pa),
		"add rule ip skiff-proxy " + serviceChain(pa) + " ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
		"add rule ip skiff-proxy " + serviceChain(pa) + " numgen random mod 2 vmap { 0 : goto " + endpointChain(pa, endpoint{"10.244.1.2", 8080}) + " , 1 : goto " + endpointChain(pa, endpoint{"10.244.1.3", 8080}) + " }",
	}, "\n") + "\n"
	if tx != want {
		t.Fatalf("incremental transaction:\n%s\nwant:\n%s", tx, want)
	}
}

func TestDeletedServiceLeavesNoRule(t *testing.T) {
	client, nft, _ := startProxier(t,
		svc("ns1", "a", "10.96.0.10", tcp("", 80)),
		slice("ns1", "a", "", 8080, corev1.ProtocolTCP, "10.244.1.2"),
	)
	waitTx(t, nft, 1)
	ctx := context.Background()
	before := nft.Dump()
	a := svc("ns1", "a", "10.96.0.10", tcp("", 80))
	a.Spec.Type = corev1.ServiceTypeNodePort
	a.Spec.Ports[0].NodePort = 30080
	a.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	if _, err := client.CoreV1().Services("ns1").Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTx(t, nft, 2)
	dump := nft.Dump()
	for _, want := range []string{"service-nodeports { tcp . 30080 : goto external-", "update @affinity-", "ip saddr @affinity-"} {
		if !strings.Contains(dump, want) {
			t.Errorf("missing %q in\n%s", want, dump)
		}
	}
	if err := client.DiscoveryV1().EndpointSlices("ns1").Delete(ctx, "a-abc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Services("ns1").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(nft.Dump(), "ns1/a") || strings.Contains(nft.Dump(), "10.96.0.10") {
		if time.Now().After(deadline) {
			t.Fatalf("rules left after delete:\n%s", nft.Dump())
		}
		time.Sleep(10 * time.Millisecond)
	}
	empty := before
	for _, l := range strings.Split(before, "\n") {
		if strings.Contains(l, "ns1/a") || strings.Contains(l, "10.96.0.10") {
			empty = strings.Replace(empty, l+"\n", "", 1)
		}
	}
	if got := nft.Dump(); got != empty {
		t.Fatalf("table after delete:\n%s\nwant the empty table:\n%s", got, empty)
	}
}

func TestUDPEndpointGoneClearsConntrack(t *testing.T) {
	udp := corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}
	client, nft, ct := startProxier(t,
		svc("ns1", "dns", "10.96.0.53", udp),
		slice("ns1", "dns", "dns", 5353, corev1.ProtocolUDP, "10.244.1.2", "10.244.1.3"),
	)
	waitTx(t, nft, 1)
	s := slice("ns1", "dns", "dns", 5353, corev1.ProtocolUDP, "10.244.1.3")
	if _, err := client.DiscoveryV1().EndpointSlices("ns1").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTx(t, nft, 2)
	var cleared []string
	for range 100 { // cleared right after the transaction
		ct.mu.Lock()
		cleared = append([]string(nil), ct.cleared...)
		ct.mu.Unlock()
		if len(cleared) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(cleared) != 1 || cleared[0] != "10.96.0.53:53>10.244.1.2" {
		t.Fatalf("conntrack cleared %v, want the gone endpoint's entries", cleared)
	}
}

// TestRulesAcceptedByNft checks the generated transaction with the real
// nft (nft --check: nothing reaches the kernel's ruleset).
func TestRulesAcceptedByNft(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (nft --check), and CI=true")
		}
		t.Skip("needs root for nft --check")
	}
	real, err := knftables.New(knftables.IPv4Family, "skiff-proxy-check")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ports := []servicePort{{
		name: portName{"ns1", "web", "http", corev1.ProtocolTCP}, clusterIP: "10.96.0.10", port: 80, nodePort: 30080, affinity: 60,
		endpoints: []endpoint{{"10.244.1.2", 8080}, {"10.244.2.3", 8080}},
	}, {
		name: portName{"ns1", "none", "", corev1.ProtocolUDP}, clusterIP: "10.96.0.11", port: 53, nodePort: 30053,
	}, {
		name: portName{"ns1", "local", "", corev1.ProtocolTCP}, clusterIP: "10.96.0.12", port: 80, nodePort: 30081,
		internalLocal: true, externalLocal: true,
		endpoints: []endpoint{{"10.244.1.2", 8080}, {"10.244.2.3", 8080}}, local: []endpoint{{"10.244.1.2", 8080}},
	}, {
		name: portName{"ns1", "nolocal", "", corev1.ProtocolTCP}, clusterIP: "10.96.0.13", port: 80, nodePort: 30082,
		internalLocal: true, externalLocal: true, endpoints: []endpoint{{"10.244.2.3", 8080}},
	}}
	tx := real.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	opt := renderOptions{ClusterCIDR: "10.244.0.0/16"}
	baseObjects(tx, opt, "10.244.1.0/24")
	var d diff
	d.service(nil, render(ports, opt))
	d.apply(tx)
	if err := real.Check(context.Background(), tx); err != nil {
		t.Fatalf("nft rejects the rules: %v\n%s", err, tx)
	}
}

// TestSyncWorkIsProportionalToChange: with many Services, a change
// to one EndpointSlice writes only that Service's chains.
func TestSyncWorkIsProportionalToChange(t *testing.T) {
	var objs []any
	const n = 300 // the fake nft is slow with big tables; the kernel is not
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		ip := fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)
		objs = append(objs, svc("ns1", name, ip, tcp("", 80)),
			slice("ns1", name, "", 8080, corev1.ProtocolTCP, fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)))
	}
	client, nft, _ := startProxier(t, objs...)
	full := waitTx(t, nft, 1)
	if ops := strings.Count(full, "\n"); ops < 5*n {
		t.Fatalf("first sync has %d operations, want every Service's", ops)
	}
	s := slice("ns1", "s200", "", 8080, corev1.ProtocolTCP, "10.244.0.201", "10.244.9.9")
	if _, err := client.DiscoveryV1().EndpointSlices("ns1").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	tx := waitTx(t, nft, 2)
	if ops := strings.Count(tx, "\n"); ops > 8 {
		t.Fatalf("incremental sync of one Service wrote %d operations:\n%s", ops, tx)
	}
	for _, l := range strings.Split(strings.TrimSpace(tx), "\n") {
		if !strings.Contains(l, "ns1/s200/") {
			t.Errorf("operation outside the changed Service: %s", l)
		}
	}
}

func TestTrafficPolicyLocalUsesThisNodesEndpoints(t *testing.T) {
	local := corev1.ServiceInternalTrafficPolicyLocal
	sv := svc("ns1", "web", "10.96.0.10", corev1.ServicePort{Name: "http", Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP})
	sv.Spec.Type = corev1.ServiceTypeNodePort
	sv.Spec.InternalTrafficPolicy = &local
	sv.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	sl := slice("ns1", "web", "http", 8080, corev1.ProtocolTCP, "10.244.1.2", "10.244.2.3")
	node := "node-a"
	sl.Endpoints[0].NodeName = &node
	ports := servicePorts(sv, []*discoveryv1.EndpointSlice{sl}, "node-a")
	rs := render(ports, renderOptions{})
	pn := portName{"ns1", "web", "http", corev1.ProtocolTCP}
	localEp := endpointChain(pn, endpoint{"10.244.1.2", 8080})
	if got := rs.chains[localChain(pn)]; len(got) != 1 || got[0] != "numgen random mod 1 vmap { 0 : goto "+localEp+" }" {
		t.Fatalf("local chain %q, want only this node's endpoint", got)
	}
	if e := rs.elements[element{Map: serviceIPsMap, Key: []string{"10.96.0.10", "tcp", "80"}}.id()]; e.Value != "goto "+localChain(pn) {
		t.Fatalf("cluster IP goes to %q, want the local chain", e.Value)
	}
	ext := rs.chains[externalChain(pn)]
	if len(ext) != 3 || ext[2] != "goto "+localChain(pn) || strings.Contains(ext[2], "mark") {
		t.Fatalf("external chain %q: want local endpoints without masquerade for outside clients", ext)
	}
	// On another node with no endpoint of its own, both are dropped.
	rs = render(servicePorts(sv, []*discoveryv1.EndpointSlice{sl}, "node-c"), renderOptions{})
	for _, id := range []string{
		element{Map: noEndpointServices, Key: []string{"10.96.0.10", "tcp", "80"}}.id(),
		element{Map: noEndpointNodePort, Key: []string{"tcp", "30080"}}.id(),
	} {
		if rs.elements[id].Value != "drop" {
			t.Errorf("%s: %q, want drop", id, rs.elements[id].Value)
		}
	}
}
