package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// sandbox is what a pod's containers share: its network namespace and
// address, and its directory of volumes and generated /etc files.
type sandbox struct {
	netns string
	ip    string
	// hostPortsSet: the pod's host ports are in the node's table (set
	// again for each new sandbox, so a restarted agent rewrites the table).
	hostPortsSet bool
}

func podDir(dataDir string, uid types.UID) string {
	return filepath.Join(podsDir(dataDir), string(uid))
}

func (w *podWorker) sandboxIP() string {
	if w.sandbox == nil {
		return ""
	}
	return w.sandbox.ip
}

func (w *podWorker) sandboxNetNS() string {
	if w.sandbox == nil {
		return ""
	}
	return w.sandbox.netns
}

// ensureSandbox prepares the pod's network and volumes; it is cheap when
// they already exist, and finds them again after an agent restart.
func (w *podWorker) ensureSandbox(ctx context.Context, pod *corev1.Pod) error {
	if w.a.hollow {
		if w.sandbox == nil {
			w.sandbox = &sandbox{}
		}
		return nil
	}
	dir := podDir(w.a.cfg.DataDir, pod.UID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("pod dir: %w", err)
	}
	// The volumes (a service account token and the configMaps from the API) and the
	// network (namespace, veth, address) do not depend on each other: a pod waits for the
	// slower of the two, not for both one after the other.
	var volErr error
	volDone := make(chan struct{})
	if w.volSync.IsZero() {
		go func() {
			defer close(volDone)
			volErr = w.a.setupVolumes(ctx, pod)
		}()
	} else {
		close(volDone)
	}
	err := w.ensureNetwork(pod, dir)
	<-volDone
	if err != nil {
		return err
	}
	if volErr != nil {
		return volErr
	}
	if w.volSync.IsZero() {
		w.volSync = time.Now()
	}
	return nil
}

// ensureNetwork sets up the pod's network, its /etc files and host ports, once.
func (w *podWorker) ensureNetwork(pod *corev1.Pod, dir string) error {
	if w.sandbox == nil {
		sb, err := w.a.podNetwork(pod)
		if err != nil {
			return err
		}
		w.sandbox = sb
		if err := w.writeEtcFiles(pod, dir); err != nil {
			return err
		}
	}
	if !w.sandbox.hostPortsSet {
		if err := w.a.setHostPorts(pod, w.sandbox); err != nil {
			return err
		}
		w.sandbox.hostPortsSet = true
	}
	return nil
}

// podNetwork sets up the pod's network: the node's own for hostNetwork,
// otherwise a namespace of its own with an address from the pod CIDR.
func (a *Agent) podNetwork(pod *corev1.Pod) (*sandbox, error) {
	if pod.Spec.HostNetwork {
		return &sandbox{netns: fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), ip: a.nodeIP().String()}, nil
	}
	if n := a.pods.node.Load(); n != nil && n.Spec.PodCIDR != "" && a.net.PodCIDR() != n.Spec.PodCIDR {
		if err := a.net.SetPodCIDR(n.Spec.PodCIDR); err != nil {
			return nil, err
		}
	}
	if a.net.PodCIDR() == "" {
		// As the kubelet, which starts no pod network until the node has a pod CIDR: a pod
		// set up now would run with no address at all.
		return nil, errors.New("network is not ready: the node has no pod CIDR yet")
	}
	res, err := a.net.Setup(string(pod.UID))
	if err != nil {
		return nil, fmt.Errorf("pod network: %w", err)
	}
	sb := &sandbox{netns: res.NetNSPath}
	if res.IP != nil {
		sb.ip = res.IP.String()
	}
	return sb, nil
}

// writeEtcFiles writes the pod's /etc/hosts, /etc/hostname and
// /etc/resolv.conf, which every container mounts, as the kubelet does.
func (w *podWorker) writeEtcFiles(pod *corev1.Pod, dir string) error {
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	ip := w.sandbox.ip
	var hosts strings.Builder
	hosts.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if ip != "" && !pod.Spec.HostNetwork {
		fqdn := hostname
		if pod.Spec.Subdomain != "" {
			fqdn = fmt.Sprintf("%s.%s.%s.svc.cluster.local\t%s", hostname, pod.Spec.Subdomain, pod.Namespace, hostname)
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, fqdn)
	}
	for _, ha := range pod.Spec.HostAliases {
		fmt.Fprintf(&hosts, "%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
	}
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		host = nil
	}
	resolv := resolvConf(pod, host, w.a.clusterDNSIP(), w.a.cfg.ClusterDomain)
	files := map[string][]byte{
		"etc-hosts":    []byte(hosts.String()),
		"etc-hostname": []byte(hostname + "\n"),
		"resolv.conf":  resolv,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("pod %s: %w", name, err)
		}
	}
	return nil
}

// releaseSandbox gives back the network of a pod whose containers are all
// done (terminal pods keep their containers for logs, not their address).
func (a *Agent) releaseSandbox(ctx context.Context, uid types.UID) error {
	if a.net == nil {
		return nil
	}
	return a.net.Teardown(string(uid))
}

// cleanupPod removes everything of a pod that is gone: its containers
// (stopped with grace first), network, volumes, directories and logs.
func (a *Agent) cleanupPod(ctx context.Context, uid types.UID, grace time.Duration) error {
	list, err := a.cfg.Runtime.List(ctx)
	if err != nil {
		return err
	}
	var mine []runtime.Status
	for _, st := range list {
		if u, _, _, ok := parseContainerID(st.ID); ok && u == uid {
			mine = append(mine, st)
		}
	}
	var wg sync.WaitGroup
	for _, st := range mine {
		if st.State != runtime.StateRunning {
			continue
		}
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			if _, err := a.cfg.Runtime.Stop(ctx, id, grace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				a.log.Warn("stopping container", "container", id, "err", err)
			}
		}(st.ID)
	}
	wg.Wait()
	var errs []error
	for _, st := range mine {
		if err := a.cfg.Runtime.Remove(ctx, st.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			errs = append(errs, err)
		}
		a.logs.forget(st.ID)
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // keep the rest until the containers are gone
	}
	a.objects.release(uid)
	a.tokens.forget(uid)
	if a.net != nil {
		if err := a.net.Teardown(string(uid)); err != nil {
			errs = append(errs, err)
		}
	}
	dir := podDir(a.cfg.DataDir, uid)
	if err := unmountBelow(dir); err != nil {
		errs = append(errs, err)
	} else if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	logDirs, _ := filepath.Glob(filepath.Join(logsDir(a.cfg.DataDir), "*_"+string(uid)))
	for _, d := range logDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmountBelow unmounts every mount (tmpfs volumes) under dir, deepest
// first, so that removing dir never reaches into a mounted file system. It
// reads the mount table again until nothing is left, for mounts stacked on
// one another.
func unmountBelow(dir string) error {
	for range 10 {
		points, err := mountsBelow(dir)
		if err != nil || len(points) == 0 {
			return err
		}
		for i := len(points) - 1; i >= 0; i-- {
			if err := unix.Unmount(points[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmount %s: %w", points[i], err)
			}
		}
	}
	return fmt.Errorf("mounts under %s keep coming back", dir)
}

// mountsBelow lists the mount points under dir. It reads the calling
// thread's mount table, not /proc/self's: libcontainer may leave the main
// thread of the process wedged in a container's mount namespace (a locked
// goroutine that joined it ended there), so /proc/self shows that table.
func mountsBelow(dir string) ([]string, error) {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	data, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	return points, nil
}

// podDirs lists the UIDs of pods that have state on the node: a pod
// directory or a network namespace.
func (a *Agent) podDirs() []types.UID {
	seen := map[types.UID]bool{}
	entries, _ := os.ReadDir(podsDir(a.cfg.DataDir))
	for _, e := range entries {
		seen[types.UID(e.Name())] = true
	}
	if a.net != nil {
		ids, _ := a.net.IDs()
		for _, id := range ids {
			seen[types.UID(id)] = true
		}
	}
	out := make([]types.UID, 0, len(seen))
	for uid := range seen {
		out = append(out, uid)
	}
	return out
}
