package controllers_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/apitest"
	"github.com/skiff-dev/skiff/controllers/internal/trim"
)

// BenchmarkInformerHeap: what one informer over 3,000 running pods keeps on the heap, as the
// garbage collector's informers did (dynamic: whole objects as unstructured maps) and do
// (metadata: PartialObjectMetadata), beside a typed informer. Run alone:
//
//	go test ./controllers/ -run '^$' -bench InformerHeap -benchtime 1x
func BenchmarkInformerHeap(b *testing.B) {
	const pods = 3000
	cp := apitest.Start(b, 1, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client := cp.Client(0)
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < pods; i += 32 {
				p, err := client.CoreV1().Pods("default").Create(ctx, benchPod(i), metav1.CreateOptions{})
				if err == nil {
					p.Status = runningStatus(i)
					_, err = client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	starts := map[string]func(stop <-chan struct{}) cache.SharedIndexInformer{
		"dynamic": func(stop <-chan struct{}) cache.SharedIndexInformer {
			f := dynamicinformer.NewDynamicSharedInformerFactory(dynamic.NewForConfigOrDie(cp.RESTConfig(0)), 0)
			inf := f.ForResource(gvr).Informer()
			f.Start(stop)
			return inf
		},
		"metadata": func(stop <-chan struct{}) cache.SharedIndexInformer {
			f := metadatainformer.NewSharedInformerFactory(metadata.NewForConfigOrDie(cp.RESTConfig(0)), 0)
			inf := f.ForResource(gvr).Informer()
			f.Start(stop)
			return inf
		},
		"typed": func(stop <-chan struct{}) cache.SharedIndexInformer {
			f := informers.NewSharedInformerFactory(client, 0)
			inf := f.Core().V1().Pods().Informer()
			f.Start(stop)
			return inf
		},
		"typed-no-managed-fields": func(stop <-chan struct{}) cache.SharedIndexInformer { // the transform before parts were shared
			f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(trim.ManagedFields))
			inf := f.Core().V1().Pods().Informer()
			f.Start(stop)
			return inf
		},
		"typed-trimmed": func(stop <-chan struct{}) cache.SharedIndexInformer { // the controllers' shared informers
			f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(trim.Object))
			inf := f.Core().V1().Pods().Informer()
			f.Start(stop)
			return inf
		},
	}
	for _, name := range []string{"dynamic", "metadata", "typed", "typed-no-managed-fields", "typed-trimmed"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				before := liveHeap()
				stop := make(chan struct{})
				inf := starts[name](stop)
				if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
					b.Fatal("informer never synced")
				}
				if n := len(inf.GetStore().ListKeys()); n < pods {
					b.Fatalf("informer holds %d pods", n)
				}
				held := liveHeap() - before
				runtime.KeepAlive(inf)
				close(stop)
				b.ReportMetric(float64(held)/(1<<20), "MB-held")
				b.ReportMetric(float64(held)/pods, "B/object")
			}
		})
	}
}

func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// runningStatus is pod i's status as its node's agent reports it once the pod runs, the
// pods started 300 a second (as bench scale's run).
func runningStatus(i int) corev1.PodStatus {
	at := metav1.NewTime(time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second / 300))
	conds := []corev1.PodCondition{}
	for _, t := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		conds = append(conds, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: at})
	}
	yes := true
	ip := fmt.Sprintf("10.244.%d.%d", i/250, i%250+2)
	return corev1.PodStatus{Phase: corev1.PodRunning, Conditions: conds, HostIP: "10.0.0.1", HostIPs: []corev1.HostIP{{IP: "10.0.0.1"}},
		PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, StartTime: &at, QOSClass: corev1.PodQOSBurstable,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: true, Started: &yes, Image: "registry.k8s.io/pause:3.10",
			ImageID:     "registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a",
			ContainerID: fmt.Sprintf("skiff://%064d", i), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at}}}}}
}

// benchPod is a pod as bench scheduler's Deployments make them, owned by a ReplicaSet.
func benchPod(i int) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%d", i), Labels: map[string]string{"app": "load", "pod-template-hash": "5d8f7c9b6"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "load-5d8f7c9b6",
				UID: "6f1d5c4e-1b2a-4c3d-9e8f-7a6b5c4d3e2f", Controller: &yes, BlockOwnerDeletion: &yes}}},
		Spec: corev1.PodSpec{NodeName: fmt.Sprintf("hollow-%d", i%100), Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}},
	}
}
