package apiserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apitest"
)

const (
	benchAdminToken = "bench-admin"
	benchNodeToken  = "bench-node"
	benchProtobuf   = "application/vnd.kubernetes.protobuf"
	benchAccept     = "application/vnd.kubernetes.protobuf,application/json"
	benchWriters    = 32
)

var podWriteRun atomic.Int64

// BenchmarkPodWritePath measures the servers' part of the three writes every bare pod of
// `skiff bench scheduler --via pods` costs, one sub-benchmark each, as their clients make
// them: the bench's protobuf create, the scheduler's protobuf pods/binding, and the node
// agent's status patch (the kubelet's strategic merge patch of the status subresource, as
// system:node:<node>, with a protobuf answer). The requests go straight to one server's
// handler (no TLS, no client) on a one-node Raft store, 32 at a time; each op is one pod.
// cpu-ns/op is the process's CPU (user+system) per op, the figure that bounds throughput
// on a shared machine; ns/op is wall time over 32 writers and mostly waits on fsync.
func BenchmarkPodWritePath(b *testing.B) {
	c := apitest.Start(b, 1, apitest.Options{Tokens: map[string]apiserver.UserInfo{
		benchAdminToken: {Name: "bench-admin", Groups: []string{"system:masters"}},
		benchNodeToken:  {Name: "system:node:n1", Groups: []string{"system:nodes"}},
	}})
	h := c.Servers[0].Handler()
	pb := scheme.Codecs.EncoderForVersion(protobuf.NewSerializer(scheme.Scheme, scheme.Scheme), corev1.SchemeGroupVersion)
	encode := func(obj runtime.Object) []byte {
		data, err := runtime.Encode(pb, obj)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	do := func(method, path, token, ct string, body []byte, want int) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Accept", benchAccept)
		r.Header.Set("User-Agent", "bench/v0.0.0")
		w := httptest.NewRecorder()
		// A goroutine of its own, as net/http's HTTP/2 server gives every stream: its stack
		// starts small and grows with the request, which is part of the request's cost.
		done := make(chan struct{})
		go func() { defer close(done); h.ServeHTTP(w, r) }()
		<-done
		if w.Code != want {
			// Called from the writers' goroutines, where b.Fatal may not be.
			panic(fmt.Sprintf("%s %s: %d %s", method, path, w.Code, w.Body.String()))
		}
		return w
	}
	do(http.MethodPost, "/api/v1/nodes", benchAdminToken, benchProtobuf, encode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}), http.StatusCreated)

	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}}
	const pods = "/api/v1/namespaces/default/pods"
	create := func(name string) {
		do(http.MethodPost, pods, benchAdminToken, benchProtobuf,
			encode(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}}, Spec: spec}), http.StatusCreated)
	}
	bind := func(name string) {
		do(http.MethodPost, pods+"/"+name+"/binding", benchAdminToken, benchProtobuf,
			encode(&corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}), http.StatusCreated)
	}
	// statusPatch is the node agent's patch (nodeagent's statusPatch) from the bound pod's
	// status to a running one.
	statusPatch := func(name string) []byte {
		w := do(http.MethodGet, pods+"/"+name, benchAdminToken, "", nil, http.StatusOK)
		obj, err := runtime.Decode(scheme.Codecs.UniversalDecoder(corev1.SchemeGroupVersion), w.Body.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		pod := obj.(*corev1.Pod)
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		st := *pod.Status.DeepCopy()
		st.Phase, st.HostIP, st.PodIP = corev1.PodRunning, "10.0.0.1", "10.244.1.7"
		st.HostIPs, st.PodIPs, st.StartTime = []corev1.HostIP{{IP: st.HostIP}}, []corev1.PodIP{{IP: st.PodIP}}, &now
		for _, t := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady} {
			st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
		}
		started := true
		st.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Image: "registry.k8s.io/pause:3.10", ImageID: "sha256:0123456789abcdef",
			ContainerID: "hollow://0123456789abcdef", Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
		oldData, _ := json.Marshal(corev1.Pod{Status: pod.Status})
		newData, _ := json.Marshal(corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: pod.UID}, Status: st})
		patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, corev1.Pod{})
		if err != nil {
			b.Fatal(err)
		}
		return patch
	}
	patchStatus := func(name string, patch []byte) {
		do(http.MethodPatch, pods+"/"+name+"/status", benchNodeToken, string(types.StrategicMergePatchType), patch, http.StatusOK)
	}

	// names returns n pod names not used before in this process.
	names := func(n int) []string {
		run := podWriteRun.Add(1)
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("pw-%d-%d", run, i)
		}
		return out
	}
	b.Run("create", func(b *testing.B) {
		ns := names(b.N)
		measure(b, len(ns), func(i int) { create(ns[i]) })
	})
	b.Run("bind", func(b *testing.B) {
		ns := names(b.N)
		parallel(len(ns), func(i int) { create(ns[i]) })
		measure(b, len(ns), func(i int) { bind(ns[i]) })
	})
	b.Run("status", func(b *testing.B) {
		ns := names(b.N)
		patches := make([][]byte, len(ns))
		parallel(len(ns), func(i int) { create(ns[i]); bind(ns[i]); patches[i] = statusPatch(ns[i]) })
		measure(b, len(ns), func(i int) { patchStatus(ns[i], patches[i]) })
	})
}

// measure runs op for 0..n-1 from benchWriters goroutines with the timer running, and
// reports the process's CPU per op.
func measure(b *testing.B, n int, op func(i int)) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	parallel(n, op)
	cpu := processCPU() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
}

func parallel(n int, op func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range benchWriters {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				op(i)
			}
		})
	}
	wg.Wait()
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
