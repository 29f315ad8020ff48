package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// k8sReferenceBinaries are what ../shared/k8s-reference/build.sh leaves in $WORK/bin.
var k8sReferenceBinaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok", "kwok-stages.yaml"}

// missingK8sReference lists the reference binaries that are not in binDir.
func missingK8sReference(binDir string) []string {
	var missing []string
	for _, b := range k8sReferenceBinaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	return missing
}

// ensureK8sReference runs the reference's build.sh (WORK=buildWork) when a binary is
// missing, printing its progress: a cold build takes about 13 minutes on 2 cores.
func ensureK8sReference(ctx context.Context, refDir, buildWork string, progress io.Writer) error {
	bin := filepath.Join(buildWork, "bin")
	missing := missingK8sReference(bin)
	if len(missing) == 0 {
		fmt.Fprintf(progress, "bench api: upstream: binaries present in %s\n", bin)
		return nil
	}
	if err := os.MkdirAll(buildWork, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(buildWork, "build.log")
	fmt.Fprintf(progress, "bench api: upstream: %s missing in %s: building with %s/build.sh (about 13 minutes on 2 cores; log %s)\n",
		strings.Join(missing, ", "), bin, refDir, logPath)
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(progress, "bench api: upstream: still building (%s)\n", time.Since(start).Round(time.Second))
			}
		}
	})
	err := runScript(ctx, filepath.Join(refDir, "build.sh"), nil, []string{"WORK=" + buildWork}, logPath, progress, "bench api: upstream build: ")
	close(done)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("k8s-reference build.sh: %w (end of %s:\n%s)", err, logPath, tail(logPath, 15))
	}
	if missing := missingK8sReference(bin); len(missing) > 0 {
		return fmt.Errorf("k8s-reference build.sh finished but %s still missing in %s", strings.Join(missing, ", "), bin)
	}
	fmt.Fprintf(progress, "bench api: upstream: built in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// runScript runs a bash script with extra environment, appending its output to logPath and
// echoing each line to progress with a prefix. The script runs in its own process group, so
// a Ctrl-C reaches only the benchmark (which then stops what the script started).
func runScript(ctx context.Context, script string, args, env []string, logPath string, progress io.Writer, prefix string) error {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	pr, pw := io.Pipe()
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(lf, sc.Text())
			fmt.Fprintln(progress, prefix+sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	})
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); pw.Close() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-waited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-waited
		}
		err = errors.Join(ctx.Err(), err)
	}
	wg.Wait()
	return err
}

// upstreamSystem is the k8s-reference control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, and kwok for the nodes) started by its run.sh
// in a directory of its own, on free ports, so that it cannot meet another copy on the
// machine. Its bin/ links to the build's.
type upstreamSystem struct {
	refDir, buildWork, work string
	etcdMembers             int
	progress                io.Writer
	env                     []string
	started                 bool
}

func (u *upstreamSystem) Name() string { return APIUpstream }

func (u *upstreamSystem) Start(ctx context.Context) ([]*rest.Config, error) {
	if err := os.MkdirAll(u.work, 0o755); err != nil {
		return nil, err
	}
	link := filepath.Join(u.work, "bin")
	_ = os.Remove(link)
	if err := os.Symlink(filepath.Join(u.buildWork, "bin"), link); err != nil {
		return nil, err
	}
	ports, err := upstreamPorts()
	if err != nil {
		return nil, err
	}
	u.env = []string{"WORK=" + u.work, "NODES=1", "ETCD_MEMBERS=" + strconv.Itoa(max(u.etcdMembers, 1)),
		"API_PORT=" + strconv.Itoa(ports[0]), "ETCD_PORT=" + strconv.Itoa(ports[1]),
		"KCM_PORT=" + strconv.Itoa(ports[2]), "SCHED_PORT=" + strconv.Itoa(ports[3])}
	u.started = true
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := runScript(sctx, filepath.Join(u.refDir, "run.sh"), []string{"start"}, u.env,
		filepath.Join(u.work, "run.log"), u.progress, "bench api: upstream: "); err != nil {
		return nil, fmt.Errorf("k8s-reference run.sh start: %w", err)
	}
	c, err := clientcmd.BuildConfigFromFlags("", filepath.Join(u.work, "kubeconfig"))
	if err != nil {
		return nil, err
	}
	return []*rest.Config{c}, nil
}

// upstreamPorts picks four free loopback ports: apiserver, etcd client (whose +1, the peer
// port, must be free too), controller-manager, scheduler.
func upstreamPorts() ([]int, error) {
	for try := 0; try < 20; try++ {
		addrs, err := freeAddrs(4)
		if err != nil {
			return nil, err
		}
		var ports []int
		for _, a := range addrs {
			_, p, _ := net.SplitHostPort(a)
			n, _ := strconv.Atoi(p)
			ports = append(ports, n)
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]+1)); err == nil {
			l.Close()
			if ports[1]+1 != ports[0] && ports[1]+1 != ports[2] && ports[1]+1 != ports[3] {
				return ports, nil
			}
		}
	}
	return nil, errors.New("no free port pair for etcd")
}

// PIDs are the control-plane processes whose memory is summed: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler (kwok, the node simulator, is not counted, as
// skiff's hollow nodes are not).
func (u *upstreamSystem) PIDs() []int {
	names := []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	for i := 1; i <= max(u.etcdMembers, 1); i++ {
		names = append(names, fmt.Sprintf("etcd%d", i))
	}
	var pids []int
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(u.work, n+".pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (u *upstreamSystem) Stop() error {
	if !u.started {
		return nil
	}
	u.started = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return runScript(ctx, filepath.Join(u.refDir, "run.sh"), []string{"stop"}, u.env,
		filepath.Join(u.work, "run.log"), u.progress, "bench api: upstream: ")
}

// StartNodes makes n kwok nodes: run.sh made kwok-node-0 and runs kwok; the rest are
// created here alike.
func (u *upstreamSystem) StartNodes(ctx context.Context, client kubernetes.Interface, n int) (nodeFleet, error) {
	if err := createKwokNodes(ctx, client, 1, n); err != nil {
		return nil, err
	}
	return fleetFunc{}, nil
}

// kwokNode is a node for kwok to manage, as run.sh's nodes_yaml makes them.
func kwokNode(name string) *corev1.Node {
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
				"kubernetes.io/role": "agent", "node-role.kubernetes.io/agent": "", "type": "kwok"}},
		Status: corev1.NodeStatus{Allocatable: capacity, Capacity: capacity,
			NodeInfo: corev1.NodeSystemInfo{Architecture: "amd64", KubeProxyVersion: "fake", KubeletVersion: "fake", OperatingSystem: "linux"}},
	}
}

// createKwokNodes creates kwok-node-<from>..kwok-node-<to-1> with 16 writers.
func createKwokNodes(ctx context.Context, client kubernetes.Interface, from, to int) error {
	next := make(chan int)
	errs := make([]error, 16)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := range next {
				if errs[w] != nil {
					continue
				}
				var err error
				for try := 0; try < 5 && ctx.Err() == nil; try++ { // a busy server may time out
					_, err = client.CoreV1().Nodes().Create(ctx, kwokNode(fmt.Sprintf("kwok-node-%d", i)), metav1.CreateOptions{})
					if err == nil || strings.Contains(err.Error(), "already exists") {
						err = nil
						break
					}
					time.Sleep(time.Second)
				}
				if err != nil {
					errs[w] = fmt.Errorf("create node kwok-node-%d: %w", i, err)
				}
			}
		})
	}
	for i := from; i < to && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// startKwok runs the reference's kwok binary, unchanged and with run.sh's flags, against
// the cluster of kubeconfig: it manages the nodes annotated kwok.x-k8s.io/node=fake. It
// runs at nice 10, as skiff's hollow nodes do (`hollow-nodes --nice`): simulated nodes
// stand in for other machines and must not take the control plane's CPU, for either system.
func startKwok(binDir, kubeconfig, logPath string) (*proc, error) {
	return startProc("kwok", logPath, "nice", "-n", "10", filepath.Join(binDir, "kwok"),
		"--kubeconfig="+kubeconfig, "--config="+filepath.Join(binDir, "kwok-stages.yaml"),
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40", "--cidr=10.0.0.0/16", "--node-ip=127.0.0.1")
}
