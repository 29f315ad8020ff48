package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

var runs atomic.Int64

// BenchmarkPodLifecycleWrites measures the API writes each scheduled pod costs a
// three-server control plane, as the scheduler and a node make them: create, bind, and a
// status update, 64 pods at a time through one server. ns/op is per pod.
func BenchmarkPodLifecycleWrites(b *testing.B) {
	c := apitest.Start(b, 3, apitest.Options{})
	rc := c.RESTConfig(0)
	rc.QPS, rc.Burst = -1, 0
	client := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	var next atomic.Int64
	run := runs.Add(1) // the benchmark function runs more than once in one cluster
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				name := fmt.Sprintf("p-%d-%d", run, i)
				pods := client.CoreV1().Pods("default")
				p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "testimage"}}}}, metav1.CreateOptions{})
				if err != nil {
					b.Error(err)
					return
				}
				if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name, UID: p.UID},
					Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
					b.Error(err)
					return
				}
				p, err = pods.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					b.Error(err)
					return
				}
				p.Status.Phase = corev1.PodRunning
				if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
