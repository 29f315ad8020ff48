package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/cluster"
)

// PodsOptions configure RunPods (`skiff bench pods`).
type PodsOptions struct {
	Exe       string // the skiff binary
	TestImage string // the static testimage binary the agent serves as skiff.local/testimage
	Pods      int
	// LatencyPods pods are created one after another at LatencyRate a second once the
	// burst's pods are deleted and gone (clusterloader2's latency pods, the pod startup
	// SLO's measurement); 0 skips that phase.
	LatencyPods int
	LatencyRate float64       // default 5, clusterloader2's Uniform5qps
	Idle        time.Duration // how long the agent's idle CPU and RSS are measured
	Timeout     time.Duration
	Dir         string
	Command     string
	Progress    io.Writer
	// ProfileDir, if set, makes the agent serve pprof and gets, from the burst: its CPU
	// profile, goroutine dumps a few times into it, its block and mutex profiles, and the
	// agent's log.
	ProfileDir string
}

// PodsResult is the outcome of the pod startup benchmark.
type PodsResult struct {
	Command string `json:"command"`
	Pods    int    `json:"pods"`
	// The burst: Pods pods created at once (16 create calls in flight). Each pod's time from
	// just before its create call to the watch event showing it Running (the image is cached
	// first, as the Kubernetes pod-startup SLI excludes image pulls). With every pod queued
	// at once this is throughput under saturation, not the SLO's startup latency.
	P50Ms float64 `json:"p50CreateToRunningMs"`
	P90Ms float64 `json:"p90CreateToRunningMs"`
	P99Ms float64 `json:"p99CreateToRunningMs"`
	MaxMs float64 `json:"maxCreateToRunningMs"`
	// PodsPerSecond: pods over the time from the first create to the last Running.
	PodsPerSecond float64 `json:"podsPerSecond"`
	// CPU seconds the agent and the three servers used from the first create to the last
	// Running (the containers' runc init, in their own processes, is in neither).
	BurstAgentCPUSeconds   float64 `json:"burstAgentCPUSeconds"`
	BurstServersCPUSeconds float64 `json:"burstServersCPUSeconds"`
	// BurstContainerCPUMsPerPod: CPU the containers' cgroups used over the burst (the agent's
	// whole cgroup tree: runc init from the moment it joins the cgroup, then the program's
	// start), per pod; 0 when the cgroup's CPU counter could not be read.
	BurstContainerCPUMsPerPod float64 `json:"burstContainerCPUMsPerPod"`
	// The agent with every pod of the burst running and idle.
	AgentRSSMiB     float64 `json:"agentRSSMiB"`
	AgentCPUPercent float64 `json:"agentCPUPercentOfOneCore"`
	// TeardownSeconds: from deleting the burst's pods to their being gone from the API, their
	// cgroups from the agent's tree and their directories from its data directory.
	TeardownSeconds float64 `json:"teardownSeconds,omitempty"`
	// The paced phase: LatencyPods pods created one after another at LatencyRate a second,
	// each timed like the burst's: startup latency as the SLO measures it.
	LatencyPods               int     `json:"latencyPods,omitempty"`
	LatencyRate               float64 `json:"latencyRatePerSecond,omitempty"`
	PacedP50Ms                float64 `json:"pacedP50CreateToRunningMs,omitempty"`
	PacedP90Ms                float64 `json:"pacedP90CreateToRunningMs,omitempty"`
	PacedP99Ms                float64 `json:"pacedP99CreateToRunningMs,omitempty"`
	PacedMaxMs                float64 `json:"pacedMaxCreateToRunningMs,omitempty"`
	PacedAgentCPUMsPerPod     float64 `json:"pacedAgentCPUMsPerPod,omitempty"`
	PacedServersCPUMsPerPod   float64 `json:"pacedServersCPUMsPerPod,omitempty"`
	PacedContainerCPUMsPerPod float64 `json:"pacedContainerCPUMsPerPod,omitempty"`
}

// latencySummary is the nearest-rank p50/p90/p99 and the maximum of lat, in milliseconds.
// It sorts lat in place.
func latencySummary(lat []time.Duration) (p50, p90, p99, maxMs float64) {
	if len(lat) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(lat)
	return ms(Percentile(lat, 0.5)), ms(Percentile(lat, 0.9)), ms(Percentile(lat, 0.99)), ms(lat[len(lat)-1])
}

// pacedAt is when, from the phase's start, the i-th (from 0) of the paced pods is created at
// rate pods a second: a fixed schedule, as clusterloader2's qpsLoad tuning set, so a slow
// create call does not push the pods after it back.
func pacedAt(i int, rate float64) time.Duration {
	return time.Duration(float64(i) / rate * float64(time.Second))
}

// RunPods starts three servers and one libcontainer agent (root), caches the test image,
// creates o.Pods pods at once and measures how fast they reach Running, then the agent's
// CPU and memory with all of them running; then deletes them, waits until they are gone,
// and creates o.LatencyPods pods at o.LatencyRate a second, timing each. Everything is
// stopped and removed afterwards.
func RunPods(ctx context.Context, o PodsOptions) (*PodsResult, error) {
	if o.Pods == 0 {
		o.Pods = 100
	}
	if o.LatencyRate <= 0 {
		o.LatencyRate = 5
	}
	o.LatencyPods = max(o.LatencyPods, 0)
	if o.Idle == 0 {
		o.Idle = 30 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("bench pods: runs real containers, so it needs root")
	}
	say := func(format string, a ...any) { fmt.Fprintf(o.Progress, "pods: "+format+"\n", a...) }
	dir, cleanup, err := clusterDir(o.Dir, "skiff-podbench-", say)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	say("starting 3 servers and 1 agent in %s", dir)
	var agentArgs []string
	pprofAddr := ""
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return nil, err
		}
		if pprofAddr, err = freeLocalAddr(); err != nil {
			return nil, err
		}
		agentArgs = []string{"--pprof-addr", pprofAddr, "--log-level", "debug"}
	}
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 3, Agents: 1, Runtime: "libcontainer",
		Binary: o.Exe, TestImageBinary: o.TestImage, Progress: prefixed(o.Progress, "pods: up: "), AgentArgs: agentArgs})
	if err != nil {
		return nil, fmt.Errorf("bench: cluster up: %w", err)
	}
	var agentPID int
	var agentLog, agentDataDir, cgroupRoot string
	var serverPIDs []int
	for _, p := range lc.Processes {
		if p.Role == "agent" {
			agentPID, agentLog, agentDataDir, cgroupRoot = p.PID, p.LogFile, p.DataDir, argAfter(p.Args, "--cgroup-root")
		} else {
			serverPIDs = append(serverPIDs, p.PID)
		}
	}
	// cpuTicks sums the CPU time of pids so far.
	cpuTicks := func(pids ...int) uint64 {
		var sum uint64
		for _, pid := range pids {
			t, _, err := procUsage(pid)
			if err == nil {
				sum += t
			}
		}
		return sum
	}
	if o.ProfileDir != "" {
		// Copied before cleanup removes the cluster: its lines time each pod's steps.
		defer copyFile(agentLog, filepath.Join(o.ProfileDir, "agent.log"))
	}
	rc, err := cluster.RestConfig(lc.Kubeconfig, "")
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	const ns = "podbench"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	running := map[string]time.Time{}
	var mu sync.Mutex
	seen := make(chan struct{}, o.Pods+o.LatencyPods+1)
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	observe := func(obj any) {
		p := obj.(*corev1.Pod)
		if p.Status.Phase != corev1.PodRunning {
			return
		}
		mu.Lock()
		if _, ok := running[p.Name]; !ok {
			running[p.Name] = time.Now()
			seen <- struct{}{}
		}
		mu.Unlock()
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }}); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	cache.WaitForCacheSync(stop, inf.HasSynced)
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "skiff.local/testimage:latest", Args: []string{"sleep", "3600"},
				ImagePullPolicy: corev1.PullIfNotPresent}}}}
	}
	wait := func(n int) error {
		timeout := time.After(o.Timeout)
		for range n {
			select {
			case <-seen:
			case <-timeout:
				mu.Lock()
				got := len(running)
				mu.Unlock()
				return fmt.Errorf("bench: %d pods running after %s", got, o.Timeout)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	// latencies are the create-to-Running times of names, whose create calls began at created,
	// and the last Running time.
	latencies := func(names []string, created []time.Time) ([]time.Duration, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		var lat []time.Duration
		var last time.Time
		for i, name := range names {
			t := running[name]
			lat = append(lat, t.Sub(created[i]))
			if t.After(last) {
				last = t
			}
		}
		return lat, last
	}
	say("caching the image with one pod")
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod("warmup"), metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if err := wait(1); err != nil {
		return nil, err
	}
	// The agent's cgroups, pod and log directories with only the warmup pod: what the
	// teardown of the burst must get back to before the paced phase. The agent removes a
	// deleted pod's containers (and cgroups) before the API object goes, then its network,
	// volumes, directory and, last, its log directory.
	baseCgroups, baseDirs := countCgroups(cgroupRoot), agentPodDirs(agentDataDir)
	say("creating %d pods at once", o.Pods)
	names := make([]string, o.Pods)
	for i := range names {
		names[i] = fmt.Sprintf("p-%03d", i)
	}
	created := make([]time.Time, o.Pods)
	var wg sync.WaitGroup
	errs := make(chan error, o.Pods)
	sem := make(chan struct{}, 16)
	var profiles sync.WaitGroup
	if o.ProfileDir != "" {
		profiles.Go(func() {
			fetchPprof(ctx, pprofAddr, "profile?seconds=8", filepath.Join(o.ProfileDir, "agent-cpu.pprof"), say)
		})
		for _, at := range []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
			profiles.Go(func() {
				time.Sleep(at)
				fetchPprof(ctx, pprofAddr, "goroutine?debug=1", filepath.Join(o.ProfileDir, fmt.Sprintf("agent-goroutines-%s.txt", at)), say)
			})
		}
	}
	agentTicks0, serverTicks0 := cpuTicks(agentPID), cpuTicks(serverPIDs...)
	containerCPU0, cgroupOK0 := cgroupCPU(cgroupRoot)
	start := time.Now()
	for i := range o.Pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			created[i] = time.Now()
			if _, err := client.CoreV1().Pods(ns).Create(ctx, pod(names[i]), metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	if err := wait(o.Pods); err != nil {
		return nil, err
	}
	agentTicks1, serverTicks1 := cpuTicks(agentPID), cpuTicks(serverPIDs...)
	containerCPU1, cgroupOK1 := cgroupCPU(cgroupRoot)
	if o.ProfileDir != "" {
		for _, p := range []string{"block", "mutex"} {
			fetchPprof(ctx, pprofAddr, p, filepath.Join(o.ProfileDir, "agent-"+p+".pprof"), say)
		}
		profiles.Wait()
	}
	lat, last := latencies(names, created)
	res := &PodsResult{Command: o.Command, Pods: o.Pods,
		PodsPerSecond:          float64(o.Pods) / last.Sub(start).Seconds(),
		BurstAgentCPUSeconds:   float64(agentTicks1-agentTicks0) / ticksPerSecond,
		BurstServersCPUSeconds: float64(serverTicks1-serverTicks0) / ticksPerSecond}
	res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs = latencySummary(lat)
	if cgroupOK0 && cgroupOK1 {
		res.BurstContainerCPUMsPerPod = ms(containerCPU1-containerCPU0) / float64(o.Pods)
	}
	say("all %d running in %s; measuring the idle agent for %s", o.Pods, last.Sub(start).Round(time.Millisecond), o.Idle)
	time.Sleep(5 * time.Second) // let the last status writes settle
	t0, _, err := procUsage(agentPID)
	if err != nil {
		return nil, fmt.Errorf("bench: agent usage: %w", err)
	}
	began := time.Now()
	select {
	case <-time.After(o.Idle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t1, rss, err := procUsage(agentPID)
	if err != nil {
		return nil, fmt.Errorf("bench: agent usage: %w", err)
	}
	res.AgentCPUPercent = 100 * float64(t1-t0) / ticksPerSecond / time.Since(began).Seconds()
	res.AgentRSSMiB = float64(rss) / (1 << 20)
	if o.LatencyPods <= 0 {
		return res, nil
	}

	// The paced phase starts from the state the burst started from: the burst's pods deleted,
	// gone from the API, and their containers' cgroups gone from the agent, so their teardown
	// does not compete with the paced pods' starts.
	say("deleting the %d pods and waiting until they are gone", o.Pods)
	teardown := time.Now()
	if err := deletePods(ctx, client, ns, names); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(o.Timeout)
	for {
		left := 0
		for _, name := range names {
			if _, ok, _ := inf.GetStore().GetByKey(ns + "/" + name); ok {
				left++
			}
		}
		cg, dirs := countCgroups(cgroupRoot), agentPodDirs(agentDataDir)
		if left == 0 && cg <= baseCgroups && dirs <= baseDirs {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench: after %s, %d of the burst's pods are still in the API; the agent has %d cgroups and %d pod and log directories (%d and %d before the burst)",
				o.Timeout, left, cg, dirs, baseCgroups, baseDirs)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res.TeardownSeconds = time.Since(teardown).Seconds()
	time.Sleep(2 * time.Second) // the agent's last writes about the deleted pods
	say("burst gone in %.1f s; creating %d pods at %g a second", res.TeardownSeconds, o.LatencyPods, o.LatencyRate)
	paced := make([]string, o.LatencyPods)
	for i := range paced {
		paced[i] = fmt.Sprintf("l-%03d", i)
	}
	pacedCreated := make([]time.Time, o.LatencyPods)
	perr := make(chan error, o.LatencyPods)
	agentTicks0, serverTicks0 = cpuTicks(agentPID), cpuTicks(serverPIDs...)
	containerCPU0, cgroupOK0 = cgroupCPU(cgroupRoot)
	pacedStart := time.Now()
	for i := range o.LatencyPods {
		select {
		case <-time.After(time.Until(pacedStart.Add(pacedAt(i, o.LatencyRate)))):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pacedCreated[i] = time.Now()
			if _, err := client.CoreV1().Pods(ns).Create(ctx, pod(paced[i]), metav1.CreateOptions{}); err != nil {
				perr <- err
			}
		}()
	}
	wg.Wait()
	close(perr)
	for err := range perr {
		return nil, err
	}
	if err := wait(o.LatencyPods); err != nil {
		return nil, err
	}
	agentTicks1, serverTicks1 = cpuTicks(agentPID), cpuTicks(serverPIDs...)
	containerCPU1, cgroupOK1 = cgroupCPU(cgroupRoot)
	lat, _ = latencies(paced, pacedCreated)
	res.LatencyPods, res.LatencyRate = o.LatencyPods, o.LatencyRate
	res.PacedP50Ms, res.PacedP90Ms, res.PacedP99Ms, res.PacedMaxMs = latencySummary(lat)
	res.PacedAgentCPUMsPerPod = 1000 * float64(agentTicks1-agentTicks0) / ticksPerSecond / float64(o.LatencyPods)
	res.PacedServersCPUMsPerPod = 1000 * float64(serverTicks1-serverTicks0) / ticksPerSecond / float64(o.LatencyPods)
	if cgroupOK0 && cgroupOK1 {
		res.PacedContainerCPUMsPerPod = ms(containerCPU1-containerCPU0) / float64(o.LatencyPods)
	}
	say("paced: p50 %.0f ms, p99 %.0f ms", res.PacedP50Ms, res.PacedP99Ms)
	return res, nil
}

// deletePods deletes names with a grace period of 1 s (the test image's sleep has no
// SIGTERM handler, so the agent kills it after that), 16 calls at a time.
func deletePods(ctx context.Context, client kubernetes.Interface, ns string, names []string) error {
	grace := int64(1)
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	sem := make(chan struct{}, 16)
	for _, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil && !apierrors.IsNotFound(err) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when none failed
}

// cgroupCPU is the CPU time used so far by every process that was ever in the cgroup tree
// root (relative to the cgroup mount) or below it: cgroup v1's cpuacct.usage, or v2's
// cpu.stat usage_usec; both are charged to every ancestor, so they keep the CPU of
// containers already removed. False when neither can be read.
func cgroupCPU(root string) (time.Duration, bool) {
	if root == "" {
		return 0, false
	}
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct", root, "cpuacct.usage")); err == nil {
		if ns, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return time.Duration(ns), true
		}
	}
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", root, "cpu.stat")); err == nil {
		return parseCPUStatUsage(string(b))
	}
	return 0, false
}

// parseCPUStatUsage takes usage_usec from a cgroup v2 cpu.stat.
func parseCPUStatUsage(stat string) (time.Duration, bool) {
	for line := range strings.Lines(stat) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "usage_usec "); ok {
			if us, err := strconv.ParseUint(v, 10, 64); err == nil {
				return time.Duration(us) * time.Microsecond, true
			}
		}
	}
	return 0, false
}

// agentPodDirs counts the agent's pod and pod log directories (nodeagent's <data dir>/pods
// and /logs), which it removes last when a deleted pod is cleaned up.
func agentPodDirs(dataDir string) int {
	n := 0
	for _, sub := range []string{"pods", "logs"} {
		entries, _ := os.ReadDir(filepath.Join(dataDir, sub))
		n += len(entries)
	}
	return n
}

// countCgroups counts the cgroups below root (one hierarchy: cgroup v1's cpuacct, or v2's
// unified tree); -1 when root cannot be read.
func countCgroups(root string) int {
	if root == "" {
		return -1
	}
	dir := filepath.Join("/sys/fs/cgroup/cpuacct", root)
	if _, err := os.Stat(dir); err != nil {
		dir = filepath.Join("/sys/fs/cgroup", root)
	}
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		return -1
	}
	return n - 1 // root itself
}

const ticksPerSecond = 100 // USER_HZ, the unit of /proc/<pid>/stat's CPU times

// freeLocalAddr is a 127.0.0.1 address with a port nothing listens on now.
func freeLocalAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// fetchPprof saves one of the agent's pprof endpoints (plain HTTP on loopback) to path.
func fetchPprof(ctx context.Context, addr, what, path string, say func(string, ...any)) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/"+what, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		say("profile %s: %v", what, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		say("profile %s: %s", what, resp.Status)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		say("profile %s: %v", what, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err == nil {
		say("saved %s", path)
	}
}

func copyFile(from, to string) {
	if b, err := os.ReadFile(from); err == nil {
		_ = os.WriteFile(to, b, 0o644)
	}
}

// WriteTable prints the result: one row a phase, then the idle agent.
func (r *PodsResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tpods\tcreated\tp50 ms\tp90 ms\tp99 ms\tmax ms\tpods/s\tagent CPU ms/pod\tservers\tcontainers\t")
	fmt.Fprintf(tw, "burst\t%d\tat once\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.Pods, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.PodsPerSecond,
		1000*r.BurstAgentCPUSeconds/float64(r.Pods), 1000*r.BurstServersCPUSeconds/float64(r.Pods), r.BurstContainerCPUMsPerPod)
	if r.LatencyPods > 0 {
		fmt.Fprintf(tw, "paced\t%d\t%g/s\t%.0f\t%.0f\t%.0f\t%.0f\t\t%.1f\t%.1f\t%.1f\t\n", r.LatencyPods, r.LatencyRate, r.PacedP50Ms, r.PacedP90Ms, r.PacedP99Ms, r.PacedMaxMs,
			r.PacedAgentCPUMsPerPod, r.PacedServersCPUMsPerPod, r.PacedContainerCPUMsPerPod)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "idle agent with the burst's %d pods: RSS %.1f MiB, CPU %.1f %% of a core; burst CPU s: agent %.2f, servers %.2f; teardown %.1f s\n",
		r.Pods, r.AgentRSSMiB, r.AgentCPUPercent, r.BurstAgentCPUSeconds, r.BurstServersCPUSeconds, r.TeardownSeconds)
	return err
}

// WriteJSONFile writes the result as JSON.
func (r *PodsResult) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
