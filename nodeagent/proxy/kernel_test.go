package proxy

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/knftables"
)

// BenchmarkKernelSync programs the real kernel, in a network namespace of
// its own, with 10 and with 1,000 Services of 10 endpoints each: it
// reports the full sync's time, and per operation the time from an
// EndpointSlice change to its rules in the kernel (p50 and p99 over b.N
// changes). The change should cost the same at both sizes.
//
//	go test -run '^$' -bench KernelSync -benchtime 200x ./nodeagent/proxy
func BenchmarkKernelSync(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchmarkKernelSync(b, n) })
	}
}

func benchmarkKernelSync(b *testing.B, services int) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: programs nftables in a private network namespace")
	}
	runtime.LockOSThread() // nft runs in this thread's namespace
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		b.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = netns.Set(orig); ns.Close() }()

	const perService = 10
	client := fake.NewClientset()
	for i := range services {
		name := fmt.Sprintf("s%d", i)
		ips := make([]string, perService)
		for j := range ips {
			ips[j] = fmt.Sprintf("10.%d.%d.%d", 100+j, i/250, i%250+1)
		}
		for _, o := range []k8sruntime.Object{
			svc("ns1", name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), tcp("", 80)),
			slice("ns1", name, "", 8080, corev1.ProtocolTCP, ips...),
		} {
			if err := client.Tracker().Add(o); err != nil {
				b.Fatal(err)
			}
		}
	}
	nft, err := knftables.New(knftables.IPv4Family, TableName)
	if err != nil {
		b.Skip(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf := informers.NewSharedInformerFactory(client, 0)
	p, err := New(Config{NFT: nft, Informers: inf, ClusterCIDR: "10.244.0.0/16"})
	if err != nil {
		b.Fatal(err)
	}
	inf.Start(ctx.Done())
	defer func() { cancel(); inf.Shutdown() }()
	for !p.services.hasSynced() {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := p.sync(ctx); err != nil {
		b.Fatal(err)
	}
	full := time.Since(start)

	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("s%d", i%services)
		s := slice("ns1", name, "", 8080, corev1.ProtocolTCP, fmt.Sprintf("10.99.%d.%d", i/250%250, i%250+1))
		if _, err := client.DiscoveryV1().EndpointSlices("ns1").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now() // the change is in the API: from here to the kernel
		for {
			p.mu.Lock()
			n := len(p.dirty)
			p.mu.Unlock()
			if n > 0 {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		if err := p.sync(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(full.Seconds()*1000, "full-sync-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
