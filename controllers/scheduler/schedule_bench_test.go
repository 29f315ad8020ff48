package scheduler

import (
	"fmt"
	corev1 "k8s.io/api/core/v1"
	"math/rand/v2"
	"testing"
)

// BenchmarkSchedule1000Nodes is one scheduling decision among 1,000 nodes holding 10 pods
// each, the shape of `skiff bench scheduler`.
func BenchmarkSchedule1000Nodes(b *testing.B) {
	nodes := make([]*NodeInfo, 1000)
	for i := range nodes {
		var on []*corev1.Pod
		for j := range 10 {
			on = append(on, pod(fmt.Sprintf("p-%d-%d", i, j), "10m", "16Mi", withOwner("rs")))
		}
		nodes[i] = NewNodeInfo(node(fmt.Sprintf("n%d", i), "8", "32Gi", 110), on...)
	}
	p := pod("new", "10m", "16Mi", withOwner("rs"))
	rng := rand.New(rand.NewPCG(1, 2))
	start := 0
	b.ReportAllocs()
	for b.Loop() {
		d, err := Schedule(LeastAllocated, p, nodes, start, rng)
		if err != nil {
			b.Fatal(err)
		}
		start = d.Next
	}
}
