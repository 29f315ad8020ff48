package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	Idle      time.Duration // how long the agent's idle CPU and RSS are measured
	Timeout   time.Duration
	Dir       string
	Command   string
	Progress  io.Writer
	// ProfileDir, if set, makes the agent serve pprof and gets, from the burst: its CPU
	// profile, goroutine dumps a few times into it, its block and mutex profiles, and the
	// agent's log.
	ProfileDir string
}

// PodsResult is the outcome of the pod startup benchmark.
type PodsResult struct {
	Command string `json:"command"`
	Pods    int    `json:"pods"`
	// Startup latency: from just before each pod's create call to the watch event showing
	// it Running (the image is cached first, as the Kubernetes pod-startup SLI excludes
	// image pulls).
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
	// The agent with every pod running and idle.
	AgentRSSMiB     float64 `json:"agentRSSMiB"`
	AgentCPUPercent float64 `json:"agentCPUPercentOfOneCore"`
}

// RunPods starts three servers and one libcontainer agent (root), caches the test image,
// creates o.Pods pods at once and measures how fast they reach Running, then the agent's
// CPU and memory with all of them running. Everything is stopped and removed afterwards.
func RunPods(ctx context.Context, o PodsOptions) (*PodsResult, error) {
	if o.Pods == 0 {
		o.Pods = 100
	}
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
	var agentLog string
	var serverPIDs []int
	for _, p := range lc.Processes {
		if p.Role == "agent" {
			agentPID, agentLog = p.PID, p.LogFile
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
	seen := make(chan struct{}, o.Pods+1)
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
	say("caching the image with one pod")
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod("warmup"), metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if err := wait(1); err != nil {
		return nil, err
	}
	say("creating %d pods at once", o.Pods)
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
	start := time.Now()
	for i := range o.Pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			created[i] = time.Now()
			if _, err := client.CoreV1().Pods(ns).Create(ctx, pod(fmt.Sprintf("p-%03d", i)), metav1.CreateOptions{}); err != nil {
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
	if o.ProfileDir != "" {
		for _, p := range []string{"block", "mutex"} {
			fetchPprof(ctx, pprofAddr, p, filepath.Join(o.ProfileDir, "agent-"+p+".pprof"), say)
		}
		profiles.Wait()
	}
	mu.Lock()
	var lat []time.Duration
	last := start
	for i := range o.Pods {
		t := running[fmt.Sprintf("p-%03d", i)]
		lat = append(lat, t.Sub(created[i]))
		if t.After(last) {
			last = t
		}
	}
	mu.Unlock()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res := &PodsResult{Command: o.Command, Pods: o.Pods,
		P50Ms: ms(Percentile(lat, 0.5)), P90Ms: ms(Percentile(lat, 0.9)), P99Ms: ms(Percentile(lat, 0.99)), MaxMs: ms(lat[len(lat)-1]),
		PodsPerSecond:          float64(o.Pods) / last.Sub(start).Seconds(),
		BurstAgentCPUSeconds:   float64(agentTicks1-agentTicks0) / ticksPerSecond,
		BurstServersCPUSeconds: float64(serverTicks1-serverTicks0) / ticksPerSecond}
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
	return res, nil
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

// WriteTable prints the result.
func (r *PodsResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pods\tp50 ms\tp90 ms\tp99 ms\tmax ms\tpods/s\tburst CPU s agent\tservers\tidle agent RSS MiB\tidle agent CPU %\t")
	fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.2f\t%.2f\t%.1f\t%.1f\t\n", r.Pods, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.PodsPerSecond,
		r.BurstAgentCPUSeconds, r.BurstServersCPUSeconds, r.AgentRSSMiB, r.AgentCPUPercent)
	return tw.Flush()
}

// WriteJSONFile writes the result as JSON.
func (r *PodsResult) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
