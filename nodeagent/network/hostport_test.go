package network

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// TestHostPortRulesDNATAndMasqueradeOnlyWhereNeeded checks the table a
// pod's host ports become: DNAT to the pod for traffic addressed to the
// node (one address with hostIP), masquerade only for the node's pods and
// loopback, and no table at all once the last mapping is gone.
func TestHostPortRulesDNATAndMasqueradeOnlyWhereNeeded(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, "skiff-hostports")
	run := func(recs map[string]hostPortRecord) string {
		t.Helper()
		tx := fake.NewTransaction()
		renderHostPorts(tx, "skiff0", recs)
		if err := fake.Run(context.Background(), tx); err != nil {
			t.Fatal(err)
		}
		return fake.Dump()
	}
	dump := run(map[string]hostPortRecord{"pod-a": {PodIP: "10.244.1.5", Ports: []HostPort{
		{Protocol: "tcp", HostPort: 8080, ContainerPort: 80},
		{Protocol: "udp", HostIP: "192.0.2.7", HostPort: 5353, ContainerPort: 53},
	}}})
	tcp, udp := hostPortChain("pod-a", HostPort{Protocol: "tcp", HostPort: 8080}), hostPortChain("pod-a", HostPort{Protocol: "udp", HostIP: "192.0.2.7", HostPort: 5353})
	for _, want := range []string{
		"add rule ip skiff-hostports prerouting fib daddr type local jump hostports",
		"add rule ip skiff-hostports output fib daddr type local jump hostports",
		"add rule ip skiff-hostports hostports meta l4proto tcp th dport 8080 jump " + tcp,
		"add rule ip skiff-hostports hostports ip daddr 192.0.2.7 meta l4proto udp th dport 5353 jump " + udp,
		"add rule ip skiff-hostports " + tcp + " iifname \"skiff0\" mark set mark or 0x2000",
		"add rule ip skiff-hostports " + tcp + " meta l4proto tcp dnat to 10.244.1.5:80",
		"add rule ip skiff-hostports " + udp + " meta l4proto udp dnat to 10.244.1.5:53",
		"add rule ip skiff-hostports postrouting masquerade",
	} {
		if !strings.Contains(dump, want+"\n") {
			t.Errorf("missing %q in\n%s", want, dump)
		}
	}
	if dump := run(nil); dump != "" {
		t.Errorf("table left with no mapping:\n%s", dump)
	}
}
