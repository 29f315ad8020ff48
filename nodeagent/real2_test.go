package nodeagent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/skiff-dev/skiff/nodeagent/network"
)

func TestExecOverSPDYRunsCommandInContainer(t *testing.T) {
	pod := uniquePod("exec", ctr("main", "serve", "--port", "8080"))
	client := fake.NewSimpleClientset(pod)
	a := startRealAgent(t, client, nil)
	waitPod(t, client, "exec", 30*time.Second, phaseIs(corev1.PodRunning))

	run := func(cmd ...string) (string, error) {
		q := url.Values{"output": {"1"}, "error": {"1"}, "command": cmd}
		u, _ := url.Parse(fmt.Sprintf("https://127.0.0.1:%d/exec/default/exec/main?%s", a.Port(), q.Encode()))
		cfg := &rest.Config{Host: u.Host, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
		ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
		if err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
		return out.String() + errb.String(), err
	}
	// The server may still be starting: retry until it answers.
	eventually(t, 15*time.Second, "exec output", func() (bool, string) {
		out, err := run("/testimage", "get", "http://127.0.0.1:8080/hostname")
		return err == nil && out == "exec\n", fmt.Sprintf("%q %v", out, err)
	})
	_, err := run("/testimage", "exit", "7")
	if err == nil || !strings.Contains(err.Error(), "exit code 7") {
		t.Fatalf("exit code not reported: %v", err)
	}
}

func TestPodsTalkOverPodIPs(t *testing.T) {
	server := uniquePod("server", ctr("main", "serve", "--port", "8080"))
	client := fake.NewSimpleClientset(server)
	startRealAgent(t, client, nil)
	sp := waitPod(t, client, "server", 30*time.Second, phaseIs(corev1.PodRunning))
	if sp.Status.PodIP == "" {
		t.Fatal("no pod IP")
	}
	clientPod := uniquePod("client", ctr("main", "get", "http://"+sp.Status.PodIP+":8080/hostname"))
	clientPod.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := client.CoreV1().Pods("default").Create(context.Background(), clientPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cp := waitPod(t, client, "client", 30*time.Second, func(p *corev1.Pod) (bool, string) {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, string(p.Status.Phase)
	})
	if cp.Status.Phase != corev1.PodSucceeded || cp.Status.PodIP == sp.Status.PodIP {
		t.Fatalf("client pod %s, IPs %s %s", cp.Status.Phase, cp.Status.PodIP, sp.Status.PodIP)
	}
}

func TestDeletedPodLeavesNothingBehind(t *testing.T) {
	c := serverCtr("main")
	c.VolumeMounts = []corev1.VolumeMount{{Name: "mem", MountPath: "/mem"}}
	pod := uniquePod("gone", c)
	pod.Spec.Volumes = []corev1.Volume{{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}}
	client := fake.NewSimpleClientset(pod)
	a := startRealAgent(t, client, nil)
	p := waitPod(t, client, "gone", 30*time.Second, ready)
	ip := p.Status.PodIP
	now := metav1.Now()
	grace := int64(5)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	begin := time.Now()
	if _, err := client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "pod gone and cleaned up", func() (bool, string) {
		if _, err := getPod(client, "gone"); err == nil {
			return false, "pod object still there"
		}
		if list, _ := a.rt.List(context.Background()); len(list) > 0 {
			return false, "containers left"
		}
		if _, err := os.Stat(podDir(a.cfg.DataDir, pod.UID)); err == nil {
			return false, "pod dir left; mounts: " + strings.Join(mountsOf(pod.UID), " | ")
		}
		if _, ok := a.net.Lookup(string(pod.UID)); ok {
			return false, "netns left"
		}
		return true, ""
	})
	// The server handles SIGTERM, so it did not need the whole grace.
	if took := time.Since(begin); took > 4*time.Second {
		t.Errorf("deletion took %v", took)
	}
	if _, err := netlink.LinkByName(network.HostVeth(string(pod.UID))); err == nil {
		t.Error("veth left")
	}
	if ms := mountsOf(pod.UID); len(ms) > 0 {
		t.Errorf("mounts left: %s", strings.Join(ms, " | "))
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/memory/skiff-test/pod" + string(pod.UID)); len(m) > 0 {
		t.Error("pod cgroup left")
	}
	if entries, _ := os.ReadDir(filepath.Join(a.cfg.DataDir, "network", "ips")); len(entries) > 0 {
		t.Errorf("address %s still allocated: %v", ip, entries)
	}
}

func TestRestartedAgentAdoptsRunningContainers(t *testing.T) {
	pod := uniquePod("survivor", ctr("main", "serve", "--port", "8080"))
	client := fake.NewSimpleClientset(pod)
	a1 := startRealAgentKeep(t, client)
	p := waitPod(t, client, "survivor", 30*time.Second, phaseIs(corev1.PodRunning))
	before := p.Status.ContainerStatuses[0]
	st1, _ := a1.rt.Status(context.Background(), strings.TrimPrefix(before.ContainerID, containerIDPrefix))
	a1.stop() // like kill -9: containers keep running, nothing is cleaned up

	a2 := a1.restart(t)
	time.Sleep(2 * time.Second) // several housekeeping rounds
	p = waitPod(t, client, "survivor", 30*time.Second, phaseIs(corev1.PodRunning))
	after := p.Status.ContainerStatuses[0]
	st2, err := a2.rt.Status(context.Background(), strings.TrimPrefix(after.ContainerID, containerIDPrefix))
	if err != nil || after.ContainerID != before.ContainerID || after.RestartCount != 0 || st2.Pid != st1.Pid || st2.State != "running" {
		t.Fatalf("before %+v pid %d, after %+v pid %d (%v)", before, st1.Pid, after, st2.Pid, err)
	}
}

func TestImageIsPulledFromPlainHTTPRegistry(t *testing.T) {
	requireRoot(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/skiff/testimage:v1"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, testImage); err != nil {
		t.Fatal(err)
	}
	c := ctr("main", "echo", "pulled")
	c.Image, c.ImagePullPolicy = ref, corev1.PullAlways
	pod := uniquePod("pulled", c)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	missing := ctr("main", "echo", "never")
	missing.Image = host + "/skiff/absent:v1"
	bad := uniquePod("badimage", missing)
	client := fake.NewSimpleClientset(pod, bad)
	startRealAgent(t, client, func(c *Config) { c.InsecureRegistries = []string{host} })
	p := waitPod(t, client, "pulled", 30*time.Second, phaseIs(corev1.PodSucceeded))
	if id := p.Status.ContainerStatuses[0].ImageID; !strings.HasPrefix(id, host+"/skiff/testimage@sha256:") {
		t.Fatalf("imageID %q", id)
	}
	waitPod(t, client, "badimage", 30*time.Second, func(p *corev1.Pod) (bool, string) {
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
			return false, "no waiting state"
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff", w.Reason
	})
	waitPod(t, client, "badimage", 30*time.Second, func(p *corev1.Pod) (bool, string) {
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == "ImagePullBackOff", fmt.Sprintf("%+v", w)
	})
}

// mountsOf lists the host's mount table lines that name uid. It reads the calling thread's
// table, as the agent does: libcontainer may leave the process's main thread in a
// container's mount namespace, and /proc/self then shows that one.
func mountsOf(uid types.UID) []string {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	data, _ := os.ReadFile("/proc/thread-self/mountinfo")
	var ms []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, string(uid)) {
			ms = append(ms, l)
		}
	}
	return ms
}
