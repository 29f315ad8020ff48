package nodeagent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apitypes "k8s.io/apimachinery/pkg/types"
)

// TestSetNodeKeepsTheNewestNode: registration, status updates and the node informer report
// the Node from different goroutines; one reporting late must not put back an older Node
// (a registration answer without the pod CIDR that node IPAM set right after).
func TestSetNodeKeepsTheNewestNode(t *testing.T) {
	m := &podManager{}
	node := func(uid, rv, cidr string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", UID: apitypes.UID("u-" + uid), ResourceVersion: rv}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
	}
	m.setNode(node("1", "12", "10.244.3.0/24"))
	m.setNode(node("1", "9", "")) // the registration's answer, delivered late
	if got := m.node.Load().Spec.PodCIDR; got != "10.244.3.0/24" {
		t.Fatalf("an older Node replaced a newer one: pod CIDR %q", got)
	}
	m.setNode(node("1", "15", "10.244.3.0/24"))
	if got := m.node.Load().ResourceVersion; got != "15" {
		t.Fatalf("resourceVersion %s, want the newer 15", got)
	}
	m.setNode(node("2", "3", "")) // deleted and registered again: a new object
	if got := m.node.Load().UID; got != "u-2" {
		t.Fatalf("UID %s, want the re-created node's", got)
	}
}
