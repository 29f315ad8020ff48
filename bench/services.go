package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/cluster"
)

// ServicesOptions configure RunServices (`skiff bench services`).
type ServicesOptions struct {
	Exe       string // the skiff binary
	TestImage string // the static testimage binary the agent serves as skiff.local/testimage
	// Services of Endpoints hollow endpoints each (EndpointSlices written
	// directly, no pods behind them).
	Services, Endpoints int
	// Baseline is the number of Services the change latency is first
	// measured with, to compare: the proxy's work should follow what
	// changed, not how many Services there are.
	Baseline int
	Changes  int // EndpointSlice changes timed at each size
	// ConnDuration is how long connections are opened to each target (the
	// Service's address, the pod's), in alternating rounds.
	ConnDuration time.Duration
	Dir          string
	Command      string
	Progress     io.Writer
}

// ServicesResult is the outcome of the service proxy benchmark.
type ServicesResult struct {
	Command   string `json:"command"`
	Date      string `json:"date"`
	Services  int    `json:"services"`
	Endpoints int    `json:"endpointsPerService"`
	Changes   int    `json:"changes"`
	// From just before the EndpointSlice update call to the kernel's
	// netlink notification of the new rule (nft monitor in the node's
	// namespace), with Services Services and with BaselineServices.
	ChangeP50Ms         float64 `json:"changeToKernelP50Ms"`
	ChangeP99Ms         float64 `json:"changeToKernelP99Ms"`
	BaselineServices    int     `json:"baselineServices"`
	BaselineChangeP50Ms float64 `json:"baselineChangeToKernelP50Ms"`
	BaselineChangeP99Ms float64 `json:"baselineChangeToKernelP99Ms"`
	// The agent's own incremental syncs in those phases, from its debug
	// log: the whole sync and the nft transaction in it, p50.
	SyncP50Ms            float64 `json:"agentSyncP50Ms"`
	SyncNftP50Ms         float64 `json:"agentSyncNftP50Ms"`
	BaselineSyncP50Ms    float64 `json:"baselineAgentSyncP50Ms"`
	BaselineSyncNftP50Ms float64 `json:"baselineAgentSyncNftP50Ms"`
	// The agent restarted (killed with -9): its full sync as it logs it
	// (rendering plus the one nft transaction), and from the restart to
	// that log line (start-up and the informers' lists included).
	FullSyncMs         float64 `json:"fullSyncMs"`
	FullSyncNftMs      float64 `json:"fullSyncNftMs"`
	FullSyncOperations int     `json:"fullSyncOperations"`
	RestartToSyncedMs  float64 `json:"restartToFullSyncMs"`
	ServiceConnsPerSec float64 `json:"serviceConnsPerSec"`
	PodConnsPerSec     float64 `json:"podConnsPerSec"`
	ServiceToPodRatio  float64 `json:"serviceToPodConnRatio"`
}

// RunServices starts one server and one libcontainer agent in network
// namespaces (root), with a pod serving HTTP behind a Service, then:
// measures EndpointSlice-change-to-kernel latency with o.Baseline Services;
// creates Services up to o.Services, each with an EndpointSlice of
// o.Endpoints hollow endpoints; kills and restarts the agent for its full
// sync; measures the change latency again; and compares connections per
// second from the node to the Service's address with those to the pod's IP.
func RunServices(ctx context.Context, o ServicesOptions) (*ServicesResult, error) {
	if o.Services == 0 {
		o.Services = 1000
	}
	if o.Endpoints == 0 {
		o.Endpoints = 10
	}
	if o.Baseline == 0 {
		o.Baseline = 10
	}
	if o.Changes == 0 {
		o.Changes = 100
	}
	if o.ConnDuration == 0 {
		o.ConnDuration = 6 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("bench services: runs a real agent in network namespaces, so it needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, fmt.Errorf("bench services: needs nft (Debian package nftables): %w", err)
	}
	say := func(format string, a ...any) { fmt.Fprintf(o.Progress, "services: "+format+"\n", a...) }
	dir, cleanup, err := clusterDir(o.Dir, "skiff-svcbench-", say)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	say("starting 1 server and 1 agent in network namespaces in %s", dir)
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 1, Agents: 1, Runtime: "libcontainer", Netns: true,
		Binary: o.Exe, TestImageBinary: o.TestImage, Progress: prefixed(o.Progress, "services: up: ")})
	if err != nil {
		return nil, fmt.Errorf("bench: cluster up: %w", err)
	}
	var agent *cluster.Process
	for i := range lc.Processes {
		if lc.Processes[i].Role == "agent" {
			agent = &lc.Processes[i]
		}
	}
	// The agent is restarted below, and cluster.json keeps its first pid:
	// stop the one running at the end before the cluster goes down.
	firstPID := agent.PID
	defer func() {
		if agent.PID != firstPID {
			cluster.StopProcess(agent.PID, 20*time.Second)
		}
	}()
	rc, err := cluster.RestConfig(lc.Kubeconfig, "")
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	b := &svcBench{o: o, client: client, say: say, ns: "svcbench", netns: agent.Netns}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	target, err := b.startTarget(ctx, agent.Name)
	if err != nil {
		return nil, err
	}
	res := &ServicesResult{Command: o.Command, Date: time.Now().UTC().Format(time.RFC3339),
		Services: o.Services, Endpoints: o.Endpoints, Changes: o.Changes, BaselineServices: o.Baseline}

	// Target's Service and the kubernetes Service count among the Baseline.
	if err := b.createHollow(ctx, 0, o.Baseline-2); err != nil {
		return nil, err
	}
	// The agent logs each sync's cost at debug level.
	agent.Args = append(agent.Args, "--log-level", "debug")
	say("restarting the agent with debug logging")
	if _, err := b.restartAgent(ctx, lc, agent, o.Baseline); err != nil {
		return nil, err
	}
	say("change latency with %d Services", o.Baseline)
	lat, syncs, err := b.changes(ctx, agent, o.Changes)
	if err != nil {
		return nil, err
	}
	res.BaselineChangeP50Ms, res.BaselineChangeP99Ms = ms(Percentile(lat, 0.5)), ms(Percentile(lat, 0.99))
	res.BaselineSyncP50Ms, res.BaselineSyncNftP50Ms = syncs.took, syncs.nft
	say("baseline: p50 %.1f ms, p99 %.1f ms (the agent's sync p50 %.1f ms, nft %.1f ms)",
		res.BaselineChangeP50Ms, res.BaselineChangeP99Ms, syncs.took, syncs.nft)

	if err := b.createHollow(ctx, o.Baseline-2, o.Services-2); err != nil {
		return nil, err
	}
	say("restarting the agent (kill -9) for a full sync of %d Services", o.Services)
	full, err := b.restartAgent(ctx, lc, agent, o.Services)
	if err != nil {
		return nil, err
	}
	res.FullSyncMs, res.FullSyncNftMs, res.FullSyncOperations, res.RestartToSyncedMs = full.took, full.nft, full.operations, full.restartToSynced
	say("full sync %.0f ms (nft %.0f ms, %d operations); restart to synced %.0f ms",
		res.FullSyncMs, res.FullSyncNftMs, res.FullSyncOperations, res.RestartToSyncedMs)

	say("change latency with %d Services", o.Services)
	if lat, syncs, err = b.changes(ctx, agent, o.Changes); err != nil {
		return nil, err
	}
	res.ChangeP50Ms, res.ChangeP99Ms = ms(Percentile(lat, 0.5)), ms(Percentile(lat, 0.99))
	res.SyncP50Ms, res.SyncNftP50Ms = syncs.took, syncs.nft
	say("p50 %.1f ms, p99 %.1f ms (the agent's sync p50 %.1f ms, nft %.1f ms)",
		res.ChangeP50Ms, res.ChangeP99Ms, syncs.took, syncs.nft)

	say("connections per second from the node: %s (Service) against %s (pod), %s each",
		target.service, target.pod, o.ConnDuration)
	if res.ServiceConnsPerSec, res.PodConnsPerSec, err = b.connRates(target, o.ConnDuration); err != nil {
		return nil, err
	}
	if res.PodConnsPerSec > 0 {
		res.ServiceToPodRatio = res.ServiceConnsPerSec / res.PodConnsPerSec
	}
	return res, nil
}

type svcBench struct {
	o      ServicesOptions
	client kubernetes.Interface
	say    func(string, ...any)
	ns     string
	netns  string // the agent's network namespace

	mu     sync.Mutex
	slices []*discoveryv1.EndpointSlice // the hollow Services' slices, by index
	serial int                          // for fresh endpoint addresses
}

type connTarget struct{ service, pod string }

// startTarget runs a serving pod on node behind a Service and returns both
// addresses once the pod is ready.
func (b *svcBench) startTarget(ctx context.Context, node string) (connTarget, error) {
	labels := map[string]string{"app": "target"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "target", Namespace: b.ns, Labels: labels}, Spec: corev1.PodSpec{
		NodeName: node,
		Containers: []corev1.Container{{Name: "serve", Image: "skiff.local/testimage:latest", Args: []string{"serve", "--port", "8080"},
			ImagePullPolicy: corev1.PullIfNotPresent}}}}
	if _, err := b.client.CoreV1().Pods(b.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return connTarget{}, err
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "target", Namespace: b.ns}, Spec: corev1.ServiceSpec{
		Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	svc, err := b.client.CoreV1().Services(b.ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		return connTarget{}, err
	}
	b.say("waiting for the target pod")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := b.client.CoreV1().Pods(b.ns).Get(ctx, "target", metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			t := connTarget{service: net.JoinHostPort(svc.Spec.ClusterIP, "80"), pod: net.JoinHostPort(p.Status.PodIP, "8080")}
			// Both answer before anything is measured.
			for time.Now().Before(deadline) {
				_, errS := b.connect(t.service)
				_, errP := b.connect(t.pod)
				if errS == nil && errP == nil {
					return t, nil
				}
				time.Sleep(200 * time.Millisecond)
			}
			return t, fmt.Errorf("bench: target does not answer through %s and %s", t.service, t.pod)
		}
		if time.Now().After(deadline) {
			return connTarget{}, fmt.Errorf("bench: target pod not running: %v", err)
		}
		select {
		case <-ctx.Done():
			return connTarget{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// createHollow creates hollow Services [from, to), each with an
// EndpointSlice of o.Endpoints addresses that nothing answers on.
func (b *svcBench) createHollow(ctx context.Context, from, to int) error {
	if to <= from {
		return nil
	}
	b.say("creating Services %d..%d with %d endpoints each", from, to-1, b.o.Endpoints)
	b.mu.Lock()
	if len(b.slices) < to {
		b.slices = append(b.slices, make([]*discoveryv1.EndpointSlice, to-len(b.slices))...)
	}
	b.mu.Unlock()
	var done atomic.Int64
	errc := make(chan error, 1)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := b.createOne(ctx, i); err != nil {
					select {
					case errc <- err:
					default:
					}
					continue
				}
				if n := done.Add(1); n%200 == 0 {
					b.say("  %d/%d created", n, to-from)
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (b *svcBench) createOne(ctx context.Context, i int) error {
	name := fmt.Sprintf("hollow-%d", i)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.ns}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := b.client.CoreV1().Services(b.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bench: create Service %s: %w", name, err)
	}
	port, portName, proto := int32(8080), "http", corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: b.ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for j := range b.o.Endpoints {
		ready := true
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 100+j%100, i/250, i%250+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	s, err := b.client.DiscoveryV1().EndpointSlices(b.ns).Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("bench: create EndpointSlice %s: %w", name, err)
	}
	b.mu.Lock()
	b.slices[i] = s
	b.mu.Unlock()
	return nil
}

// changes replaces one endpoint of n Services' slices, one at a time, and
// returns each change's time to the kernel. Changes are spaced by more
// than the proxy's minimum sync period (100 ms), so each is timed alone.
func (b *svcBench) changes(ctx context.Context, agent *cluster.Process, n int) ([]time.Duration, syncCost, error) {
	mon, err := startNftMonitor(b.netns)
	if err != nil {
		return nil, syncCost{}, err
	}
	defer mon.stop()
	offset := logSize(agent.LogFile)
	b.mu.Lock()
	count := len(b.slices)
	b.mu.Unlock()
	var lat []time.Duration
	for k := range n {
		i := (k * 7919) % count
		b.mu.Lock()
		s := b.slices[i].DeepCopy()
		b.serial++
		ip := fmt.Sprintf("10.%d.%d.%d", 200+b.serial/62500%50, b.serial/250%250, b.serial%250+1)
		b.mu.Unlock()
		s.Endpoints[0].Addresses = []string{ip}
		wait := mon.await(ip + "/8080")
		start := time.Now()
		s, err := b.client.DiscoveryV1().EndpointSlices(b.ns).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return nil, syncCost{}, fmt.Errorf("bench: update EndpointSlice: %w", err)
		}
		select {
		case <-wait:
			lat = append(lat, time.Since(start))
		case <-time.After(30 * time.Second):
			return nil, syncCost{}, fmt.Errorf("bench: the change to %s (%s) never reached the kernel", s.Name, ip)
		case <-ctx.Done():
			return nil, syncCost{}, ctx.Err()
		}
		b.mu.Lock()
		b.slices[i] = s
		b.mu.Unlock()
		if (k+1)%25 == 0 {
			b.say("  %d/%d changes", k+1, n)
		}
		time.Sleep(150 * time.Millisecond)
	}
	slices.Sort(lat)
	var took, nft []time.Duration
	for _, m := range syncLine.FindAllStringSubmatch(readFrom(agent.LogFile, offset), -1) {
		t, err1 := time.ParseDuration(m[2])
		d, err2 := time.ParseDuration(m[1])
		if err1 == nil && err2 == nil {
			took, nft = append(took, t), append(nft, d)
		}
	}
	slices.Sort(took)
	slices.Sort(nft)
	var c syncCost
	if len(took) > 0 {
		c.took, c.nft = ms(Percentile(took, 0.5)), ms(Percentile(nft, 0.5))
	}
	return lat, c, nil
}

// syncCost is what the agent logs of its syncs, in milliseconds.
type syncCost struct {
	took, nft       float64
	operations      int
	restartToSynced float64
}

var syncLine = regexp.MustCompile(`msg="proxy synced".* nft=(\S+) took=(\S+)`)

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	data, _ := io.ReadAll(f)
	return string(data)
}

var fullSyncLine = regexp.MustCompile(`msg="proxy full sync".* services=(\d+) operations=(\d+) render=(\S+) nft=(\S+) took=(\S+)`)

// restartAgent kills the agent with -9, starts it again and reads its full
// sync of at least services Services from its log.
func (b *svcBench) restartAgent(ctx context.Context, lc *cluster.LocalCluster, agent *cluster.Process, services int) (syncCost, error) {
	var c syncCost
	if err := syscall.Kill(agent.PID, syscall.SIGKILL); err != nil {
		return c, err
	}
	if !cluster.WaitGone(agent.PID, time.Minute) {
		return c, fmt.Errorf("bench: agent %s (pid %d) still running a minute after SIGKILL", agent.Name, agent.PID)
	}
	offset := logSize(agent.LogFile)
	start := time.Now()
	if err := cluster.StartProcess(lc, agent); err != nil {
		return c, err
	}
	deadline := start.Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(readFrom(agent.LogFile, offset), "\n") {
			m := fullSyncLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			var svcs int
			fmt.Sscan(m[1], &svcs)
			if svcs < services {
				continue // a sync before the informers had everything: not this one
			}
			c.restartToSynced = ms(time.Since(start))
			fmt.Sscan(m[2], &c.operations)
			nft, err1 := time.ParseDuration(m[4])
			took, err2 := time.ParseDuration(m[5])
			if err1 != nil || err2 != nil {
				return c, fmt.Errorf("bench: agent log: %q", line)
			}
			c.nft, c.took = ms(nft), ms(took)
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c, fmt.Errorf("bench: no full sync of %d Services in the agent's log %s", services, agent.LogFile)
}

// nftMonitor follows the kernel's nftables notifications in a namespace.
type nftMonitor struct {
	cmd *exec.Cmd

	mu     sync.Mutex
	want   string
	signal chan struct{}
}

func startNftMonitor(ns string) (*nftMonitor, error) {
	m := &nftMonitor{cmd: exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "nft", "monitor")}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: nft monitor: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			m.mu.Lock()
			if m.want != "" && strings.Contains(sc.Text(), m.want) {
				close(m.signal)
				m.want = ""
			}
			m.mu.Unlock()
		}
	}()
	// nft monitor reads the ruleset before it follows changes (long with a
	// big table): it is ready once it reports a table of our own.
	const sentinel = "skiff-bench-sentinel"
	ready := m.await(sentinel)
	deadline := time.After(time.Minute)
	for {
		add := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "nft", "add table ip "+sentinel+"; delete table ip "+sentinel)
		if out, err := add.CombinedOutput(); err != nil {
			m.stop()
			return nil, fmt.Errorf("bench: nft: %v: %s", err, out)
		}
		select {
		case <-ready:
			return m, nil
		case <-deadline:
			m.stop()
			return nil, fmt.Errorf("bench: nft monitor reports nothing")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// await returns a channel closed at the first notification containing s.
func (m *nftMonitor) await(s string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.want, m.signal = s, make(chan struct{})
	return m.signal
}

func (m *nftMonitor) stop() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

// connect opens one connection to addr from the agent's namespace, asks for
// /hostname over HTTP/1.0 and reads the answer; the close is a reset, so no
// TIME_WAIT is left to limit the rate. It must run on a thread in that
// namespace (see inNetns).
func (b *svcBench) connect(addr string) (int, error) {
	var n int
	err := inNetns(b.netns, func() error {
		var err error
		n, err = dialOnce(addr)
		return err
	})
	return n, err
}

func dialOnce(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_ = c.(*net.TCPConn).SetLinger(0)
	if _, err := io.WriteString(c, "GET /hostname HTTP/1.0\r\n\r\n"); err != nil {
		return 0, err
	}
	body, err := io.ReadAll(c)
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(string(body), "HTTP/1.0 200") {
		return 0, fmt.Errorf("GET %s: %q", addr, body)
	}
	return 1, nil
}

// inNetns runs fn on a thread in the named network namespace; sockets fn
// creates stay in it.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine instead of
		// going back to the pool in another namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// connRates opens connections from the agent's namespace to the Service's
// address and to the pod's, in alternating rounds, four at a time, and
// returns each one's connections per second.
func (b *svcBench) connRates(t connTarget, total time.Duration) (svc, pod float64, err error) {
	const rounds, workers = 6, 4
	round := total / rounds
	counts := map[string]int{}
	for r := range rounds {
		for _, addr := range []string{t.service, t.pod} {
			var n atomic.Int64
			var wg sync.WaitGroup
			errc := make(chan error, workers)
			end := time.Now().Add(round)
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errc <- inNetns(b.netns, func() error {
						for time.Now().Before(end) {
							if _, err := dialOnce(addr); err != nil {
								return err
							}
							n.Add(1)
						}
						return nil
					})
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				if err != nil {
					return 0, 0, fmt.Errorf("bench: connections to %s: %w", addr, err)
				}
			}
			counts[addr] += int(n.Load())
		}
		b.say("  round %d/%d: %d connections to the Service, %d to the pod so far", r+1, rounds, counts[t.service], counts[t.pod])
	}
	secs := (round * rounds).Seconds()
	return float64(counts[t.service]) / secs, float64(counts[t.pod]) / secs, nil
}

// WriteTable prints the result.
func (r *ServicesResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "services\tendpoints each\tchange p50 ms\tchange p99 ms\tagent sync p50 ms\tof it nft\tfull sync ms\tof it nft\trestart to synced ms\t")
	fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\t\t\t\n", r.BaselineServices, r.Endpoints, r.BaselineChangeP50Ms, r.BaselineChangeP99Ms,
		r.BaselineSyncP50Ms, r.BaselineSyncNftP50Ms)
	fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t\n", r.Services, r.Endpoints, r.ChangeP50Ms, r.ChangeP99Ms,
		r.SyncP50Ms, r.SyncNftP50Ms, r.FullSyncMs, r.FullSyncNftMs, r.RestartToSyncedMs)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nconnections/s from the node: %.0f to the Service, %.0f to the pod: ratio %.2f\n",
		r.ServiceConnsPerSec, r.PodConnsPerSec, r.ServiceToPodRatio)
	return err
}

// WriteJSONFile writes the result as JSON.
func (r *ServicesResult) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
