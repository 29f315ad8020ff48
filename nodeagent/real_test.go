package nodeagent

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/nodeagent/image"
	"github.com/skiff-dev/skiff/nodeagent/network"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// realAgent is an agent running real containers against a fake API.
type realAgent struct {
	*Agent
	rt     *runtime.Libcontainer
	netm   *network.Manager
	client kubernetes.Interface
	dir    string
	bridge string
	cidr   string
	mutate func(*Config)
	cancel context.CancelFunc
	done   chan error
}

// startRealAgent runs an agent with the libcontainer runtime, the test
// image imported, and a pod network on a bridge of its own.
func startRealAgent(t *testing.T, client kubernetes.Interface, mutate func(*Config)) *realAgent {
	t.Helper()
	requireRoot(t)
	// Kept out of the test binary's directory (see runtime.Config.Root).
	dir, err := os.MkdirTemp("", "nodeagent-")
	if err != nil {
		t.Fatal(err)
	}
	ra := &realAgent{
		client: client, dir: dir, mutate: mutate,
		bridge: fmt.Sprintf("skt%06x", rand.Uint32()&0xffffff),
		cidr:   fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(250)),
	}
	t.Cleanup(func() {
		ra.stop()
		// Remove whatever the test left running.
		ctx := context.Background()
		if rt, err := runtime.NewLibcontainer(runtime.Config{Root: filepath.Join(dir, "runtime"), CgroupRoot: "skiff-test"}); err == nil {
			list, _ := rt.List(ctx)
			for _, st := range list {
				_ = rt.Remove(ctx, st.ID)
			}
			rt.Close()
		}
		ids, _ := ra.netm.IDs()
		for _, id := range ids {
			_ = ra.netm.Teardown(id)
		}
		_ = unmountBelow(dir)
		_ = deleteLink(ra.bridge)
		os.RemoveAll(dir)
	})
	ra.launch(t)
	return ra
}

// startRealAgentKeep is startRealAgent for tests that restart the agent.
func startRealAgentKeep(t *testing.T, client kubernetes.Interface) *realAgent {
	return startRealAgent(t, client, nil)
}

// launch starts an agent (and runtime) over the realAgent's directories.
func (ra *realAgent) launch(t *testing.T) {
	t.Helper()
	rt, err := runtime.NewLibcontainer(runtime.Config{Root: filepath.Join(ra.dir, "runtime"), CgroupRoot: "skiff-test"})
	if err != nil {
		t.Fatal(err)
	}
	store, err := image.NewStore(filepath.Join(ra.dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Add(context.Background(), image.TestImageRef, testImage); err != nil {
		t.Fatal(err)
	}
	// A host-port table of its own: other agents may share the test's network namespace.
	netm, err := network.New(network.Config{StateDir: filepath.Join(ra.dir, "agent", "network"), Bridge: ra.bridge, HostPortTable: ra.bridge + "-hostports"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		NodeName:             "node-a",
		Client:               ra.client,
		Runtime:              rt,
		Images:               store,
		DataDir:              filepath.Join(ra.dir, "agent"),
		ListenAddr:           "127.0.0.1:0",
		Network:              netm,
		PodCIDR:              ra.cidr,
		HousekeepingInterval: 500 * time.Millisecond,
		BackoffInitial:       300 * time.Millisecond,
		BackoffMax:           2 * time.Second,
	}
	if os.Getenv("NODEAGENT_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if ra.mutate != nil {
		ra.mutate(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	ra.Agent, ra.rt, ra.netm, ra.cancel, ra.done = a, rt, netm, cancel, done
	eventually(t, 10*time.Second, "agent endpoint", func() (bool, string) { return a.Port() != 0, "" })
}

// stop ends the agent as a crash would for its containers: they keep
// running and nothing of theirs is cleaned up.
func (ra *realAgent) stop() {
	if ra.cancel == nil {
		return
	}
	ra.cancel()
	<-ra.done
	ra.rt.Close()
	ra.cancel = nil
}

// restart starts a new agent over the same directories.
func (ra *realAgent) restart(t *testing.T) *realAgent {
	ra.launch(t)
	return ra
}

func uniquePod(name string, containers ...corev1.Container) *corev1.Pod {
	p := testPod(name, containers...)
	p.UID = types.UID(fmt.Sprintf("%s-%08x", name, rand.Uint32()))
	return p
}

func ctr(name string, args ...string) corev1.Container {
	return corev1.Container{Name: name, Image: image.TestImageRef, ImagePullPolicy: corev1.PullIfNotPresent, Args: args}
}

// serverCtr is a container serving HTTP on 8080 with a TCP readiness probe, so a
// test that needs the process listening (or its SIGTERM handler installed) can
// wait for Ready: Running only says the process was started.
func serverCtr(name string) corev1.Container {
	c := ctr(name, "serve", "--port", "8080")
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	return c
}

// ready is true once the pod's Ready condition is True.
func ready(p *corev1.Pod) (bool, string) {
	return podCondition(p, corev1.PodReady), fmt.Sprintf("phase %q, statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
}

func waitPod(t *testing.T, client kubernetes.Interface, name string, timeout time.Duration, cond func(p *corev1.Pod) (bool, string)) *corev1.Pod {
	t.Helper()
	var got *corev1.Pod
	eventually(t, timeout, "pod "+name, func() (bool, string) {
		p, err := getPod(client, name)
		if err != nil {
			return false, err.Error()
		}
		got = p
		return cond(p)
	})
	return got
}

func phaseIs(ph corev1.PodPhase) func(*corev1.Pod) (bool, string) {
	return func(p *corev1.Pod) (bool, string) {
		return p.Status.Phase == ph, fmt.Sprintf("phase %q, statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
	}
}

// endpointGet fetches a path from the agent's HTTPS endpoint.
func (a *realAgent) endpointGet(t *testing.T, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d%s", a.Port(), path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestPodOutputReachesLogsEndpoint(t *testing.T) {
	pod := uniquePod("echo", ctr("main", "echo", "hello", "from", "skiff"))
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	client := fake.NewSimpleClientset(pod)
	a := startRealAgent(t, client, nil)
	p := waitPod(t, client, "echo", 30*time.Second, phaseIs(corev1.PodSucceeded))
	term := p.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.ExitCode != 0 || term.Reason != "Completed" || !strings.HasPrefix(p.Status.ContainerStatuses[0].ImageID, "skiff.local/testimage@sha256:") {
		t.Fatalf("container status %+v", p.Status.ContainerStatuses[0])
	}
	eventually(t, 10*time.Second, "log line", func() (bool, string) {
		code, body := a.endpointGet(t, "/containerLogs/default/echo/main")
		return code == 200 && body == "hello from skiff\n", fmt.Sprintf("%d %q", code, body)
	})
	code, body := a.endpointGet(t, "/containerLogs/default/echo/main?timestamps=true")
	if ts, rest, _ := strings.Cut(body, " "); code != 200 || rest != "hello from skiff\n" {
		t.Fatalf("timestamps: %d %q", code, body)
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Fatalf("timestamp %q: %v", ts, err)
	}
	if code, body := a.endpointGet(t, "/containerLogs/default/echo/main?sinceTime="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); code != 200 || body != "" {
		t.Fatalf("sinceTime in the future: %d %q", code, body)
	}
}

func TestCrashingContainerRestartsWithBackoff(t *testing.T) {
	pod := uniquePod("crash", ctr("main", "exit", "3"))
	client := fake.NewSimpleClientset(pod)
	a := startRealAgent(t, client, nil)
	p := waitPod(t, client, "crash", 60*time.Second, func(p *corev1.Pod) (bool, string) {
		if len(p.Status.ContainerStatuses) == 0 {
			return false, "no status"
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.RestartCount >= 2 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff", fmt.Sprintf("%+v", cs)
	})
	last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 3 || last.Reason != "Error" {
		t.Fatalf("lastState %+v", last)
	}
	// Only the current and the previous run are kept.
	list, _ := a.rt.List(context.Background())
	if len(list) > 2 {
		t.Fatalf("%d containers kept", len(list))
	}
}

func TestOOMKilledIsReported(t *testing.T) {
	c := ctr("main", "alloc", "200")
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("48Mi")}
	pod := uniquePod("oom", c)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	client := fake.NewSimpleClientset(pod)
	startRealAgent(t, client, nil)
	p := waitPod(t, client, "oom", 60*time.Second, phaseIs(corev1.PodFailed))
	term := p.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Fatalf("terminated %+v", term)
	}
}

func TestInitContainersRunInOrderBeforeApp(t *testing.T) {
	vol := corev1.Volume{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	init1 := ctr("first", "write", "/work/first", "1")
	init1.VolumeMounts = []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
	app := ctr("app", "get", "http://127.0.0.1:1/") // fails unless replaced below
	app.Command = []string{"/testimage"}
	app.Args = []string{"serve", "--port", "8080"}
	app.VolumeMounts = init1.VolumeMounts
	pod := uniquePod("inits", app)
	pod.Spec.InitContainers = []corev1.Container{init1, func() corev1.Container {
		c := ctr("second", "exit", "0")
		return c
	}()}
	pod.Spec.Volumes = []corev1.Volume{vol}
	client := fake.NewSimpleClientset(pod)
	a := startRealAgent(t, client, nil)
	p := waitPod(t, client, "inits", 30*time.Second, phaseIs(corev1.PodRunning))
	if len(p.Status.InitContainerStatuses) != 2 {
		t.Fatalf("init statuses %+v", p.Status.InitContainerStatuses)
	}
	first, second := p.Status.InitContainerStatuses[0].State.Terminated, p.Status.InitContainerStatuses[1].State.Terminated
	if first == nil || second == nil || first.ExitCode != 0 || second.StartedAt.Before(&first.FinishedAt) {
		t.Fatalf("init order: %+v %+v", first, second)
	}
	data, err := os.ReadFile(filepath.Join(podDir(a.cfg.DataDir, pod.UID), "volumes", "work", "first"))
	if err != nil || string(data) != "1" {
		t.Fatalf("emptyDir content %q %v", data, err)
	}
}

func TestFailingLivenessProbeRestartsContainer(t *testing.T) {
	c := ctr("main", "serve", "--port", "8080")
	c.LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/nothing-here", Port: intOrStr(8080)}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	pod := uniquePod("liveness", c)
	client := fake.NewSimpleClientset(pod)
	startRealAgent(t, client, nil)
	waitPod(t, client, "liveness", 60*time.Second, func(p *corev1.Pod) (bool, string) {
		if len(p.Status.ContainerStatuses) == 0 {
			return false, "no status"
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.RestartCount >= 1, fmt.Sprintf("%+v", cs)
	})
}

func TestReadinessProbeGatesReady(t *testing.T) {
	c := ctr("main", "serve", "--port", "8080")
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: namedPort("http")}},
		PeriodSeconds: 1,
	}
	pod := uniquePod("ready", c)
	client := fake.NewSimpleClientset(pod)
	startRealAgent(t, client, nil)
	p := waitPod(t, client, "ready", 30*time.Second, func(p *corev1.Pod) (bool, string) {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready && podCondition(p, corev1.PodReady), "not ready"
	})
	// Make the readiness endpoint fail, through the pod's IP on the
	// bridge: Ready goes False while the container keeps running.
	resp, err := http.Post("http://"+p.Status.PodIP+":8080/readyz/fail", "text/plain", nil)
	if err != nil {
		t.Fatalf("toggle readiness via pod IP %s: %v", p.Status.PodIP, err)
	}
	resp.Body.Close()
	waitPod(t, client, "ready", 30*time.Second, func(p *corev1.Pod) (bool, string) {
		cs := p.Status.ContainerStatuses[0]
		return !cs.Ready && cs.State.Running != nil && !podCondition(p, corev1.PodReady), fmt.Sprintf("%+v", cs)
	})
}

func intOrStr(n int) intstr.IntOrString { return intstr.FromInt32(int32(n)) }

func namedPort(s string) intstr.IntOrString { return intstr.FromString(s) }

// deleteLink removes a network interface, for test cleanup.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkDel(l)
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestConfigMapAndSecretReachContainer(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"}, Data: map[string]string{"greeting": "hello"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "default"}, Data: map[string][]byte{"token": []byte("s3cret")}}
	c := ctr("main", "serve", "--port", "8080")
	c.Env = []corev1.EnvVar{
		{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "greeting"}}},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "MSG", Value: "$(GREETING) world"},
	}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}, {Name: "sec", MountPath: "/sec"}}
	pod := uniquePod("cfgpod", c)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
	}
	client := fake.NewSimpleClientset(pod, cm, sec)
	a := startRealAgent(t, client, nil)
	p := waitPod(t, client, "cfgpod", 30*time.Second, phaseIs(corev1.PodRunning))
	id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, containerIDPrefix)
	run := func(args ...string) string {
		var out strings.Builder
		code, err := a.rt.Exec(context.Background(), id, runtime.ExecSpec{Args: append([]string{"/testimage"}, args...), Stdout: &out, Stderr: &out})
		if err != nil || code != 0 {
			t.Fatalf("exec %v: %d %v %s", args, code, err, out.String())
		}
		return out.String()
	}
	eventually(t, 10*time.Second, "server listening", func() (bool, string) {
		code, err := a.rt.Exec(context.Background(), id, runtime.ExecSpec{Args: []string{"/testimage", "get", "http://127.0.0.1:8080/healthz"}})
		return err == nil && code == 0, fmt.Sprint(code, err)
	})
	env := run("get", "http://127.0.0.1:8080/env")
	for _, want := range []string{"GREETING=hello", "POD_NAME=cfgpod", "MSG=hello world"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	for path, want := range map[string]string{"/cfg/greeting": "hello", "/sec/token": "s3cret"} {
		if got := run("cat", path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	// An edited configMap reaches the running container's volume.
	cm.Data["greeting"] = "bonjour"
	if _, err := client.CoreV1().ConfigMaps("default").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The agent reads configMaps from a watch, which sees the edit a moment later.
	pod2, _ := getPod(client, "cfgpod")
	eventually(t, 10*time.Second, "the edit in the volume", func() (bool, string) {
		if err := a.setupVolumes(context.Background(), pod2); err != nil {
			t.Fatal(err)
		}
		got := run("cat", "/cfg/greeting")
		return got == "bonjour", got
	})
}
