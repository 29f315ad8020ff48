package nodeagent

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const goarch = goruntime.GOARCH

// Eviction thresholds, the kubelet's hard-eviction defaults: a condition
// turns True below them.
const (
	memoryAvailableMin  = 100 << 20 // memory.available<100Mi
	diskAvailablePct    = 10        // nodefs.available<10%
	pidsAvailablePct    = 5         // a pid budget kubelet leaves to the operator; skiff picks 5%
	runtimeVersionLabel = "libcontainer://runc-1.5.2"
)

// nodeStatus computes the node's full status; old are the conditions it
// had, whose transition times carry over when unchanged.
func (a *Agent) nodeStatus(old []corev1.NodeCondition, now time.Time) (corev1.NodeStatus, error) {
	capacity, err := a.capacity()
	if err != nil {
		return corev1.NodeStatus{}, err
	}
	allocatable := corev1.ResourceList{}
	for k, v := range capacity {
		q := v.DeepCopy()
		if r, ok := a.cfg.Reserved[string(k)]; ok {
			q.Sub(r)
			if q.Sign() < 0 {
				q = resource.Quantity{}
			}
		}
		allocatable[k] = q
	}
	conds, err := a.nodeConditions(old, now)
	if err != nil {
		return corev1.NodeStatus{}, err
	}
	hostname, _ := os.Hostname()
	addrs := []corev1.NodeAddress{}
	if ip := a.nodeIP(); ip != nil {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
	}
	if hostname == "" {
		hostname = a.cfg.NodeName
	}
	addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeHostName, Address: a.cfg.NodeName})
	return corev1.NodeStatus{
		Capacity:        capacity,
		Allocatable:     allocatable,
		Conditions:      conds,
		Addresses:       addrs,
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(a.Port())}},
		NodeInfo:        a.nodeInfo(),
		Phase:           corev1.NodeRunning,
	}, nil
}

// nodeConditions reports Ready and the three pressure conditions.
func (a *Agent) nodeConditions(old []corev1.NodeCondition, now time.Time) ([]corev1.NodeCondition, error) {
	memAvail, _, err := meminfo()
	if err != nil {
		return nil, err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(a.cfg.DataDir, &fs); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", a.cfg.DataDir, err)
	}
	diskPressure := fs.Blocks > 0 && fs.Bavail*100 < fs.Blocks*diskAvailablePct
	pidPressure := false
	if max, used, err := pidUsage(); err == nil && max > 0 {
		pidPressure = (max-used)*100 < max*pidsAvailablePct
	}
	mk := func(t corev1.NodeConditionType, pressure bool, reasonOK, msgOK, reasonBad, msgBad string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: reasonOK, Message: msgOK}
		if pressure {
			c = corev1.NodeCondition{Type: t, Status: corev1.ConditionTrue, Reason: reasonBad, Message: msgBad}
		}
		return c
	}
	conds := []corev1.NodeCondition{
		mk(corev1.NodeMemoryPressure, memAvail < memoryAvailableMin,
			"KubeletHasSufficientMemory", "kubelet has sufficient memory available",
			"KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
		mk(corev1.NodeDiskPressure, diskPressure,
			"KubeletHasNoDiskPressure", "kubelet has no disk pressure",
			"KubeletHasDiskPressure", "kubelet has disk pressure"),
		mk(corev1.NodePIDPressure, pidPressure,
			"KubeletHasSufficientPID", "kubelet has sufficient PID available",
			"KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = metav1.NewTime(now)
		conds[i].LastTransitionTime = metav1.NewTime(now)
		for _, o := range old {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return conds, nil
}

// capacity detects cpu, memory, pods and ephemeral storage, then applies
// Config.Capacity overrides.
func (a *Agent) capacity() (corev1.ResourceList, error) {
	_, memTotal, err := meminfo()
	if err != nil {
		return nil, err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(a.cfg.DataDir, &fs); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", a.cfg.DataDir, err)
	}
	out := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(memTotal, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(a.cfg.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI),
	}
	for k, v := range a.cfg.Capacity {
		out[corev1.ResourceName(k)] = v.DeepCopy()
	}
	return out, nil
}

// meminfo returns MemAvailable and MemTotal in bytes.
func meminfo() (avail, total int64, err error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, fmt.Errorf("read meminfo: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = n << 10
		case "MemAvailable:":
			avail = n << 10
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("no MemTotal in /proc/meminfo")
	}
	return avail, total, nil
}

// pidUsage returns the kernel's pid limit and the number of processes.
func pidUsage() (max, used int64, err error) {
	data, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, 0, err
	}
	if max, err = strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err != nil {
		return 0, 0, err
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, 0, err
	}
	return max, int64(si.Procs), nil
}

func (a *Agent) nodeInfo() corev1.NodeSystemInfo {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	osImage := "Linux"
	for _, line := range strings.Split(read("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			osImage = strings.Trim(v, `"`)
		}
	}
	return corev1.NodeSystemInfo{
		MachineID:               read("/etc/machine-id"),
		SystemUUID:              read("/sys/class/dmi/id/product_uuid"),
		BootID:                  read("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           unix.ByteSliceToString(uts.Release[:]),
		OSImage:                 osImage,
		ContainerRuntimeVersion: runtimeVersionLabel,
		KubeletVersion:          a.cfg.Version,
		OperatingSystem:         "linux",
		Architecture:            goarch,
	}
}

// nodeIP is Config.NodeIP, or the source address of the default route.
func (a *Agent) nodeIP() net.IP {
	if a.cfg.NodeIP != nil {
		return a.cfg.NodeIP
	}
	// A UDP "connection" sends nothing; it only asks the kernel which
	// source address it would route from.
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return net.IPv4(127, 0, 0, 1)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP
}
