package framework

import (
	"fmt"
	"net"
	"time"
)

// Options are the per-controller settings, each defaulting to kube-controller-manager's or
// kube-scheduler's default. Zero values take the defaults (see Defaulted).
type Options struct {
	// Workers per controller queue (kube-controller-manager: --concurrent-*-syncs, 5).
	Workers int

	// NodeMonitorGracePeriod: how long a node may be silent before it is marked Unknown
	// (--node-monitor-grace-period, 40s).
	NodeMonitorGracePeriod time.Duration
	// NodeMonitorPeriod: how often node health is checked (--node-monitor-period, 5s).
	NodeMonitorPeriod time.Duration
	// DefaultTolerationSeconds: how long a pod without its own toleration for the
	// not-ready/unreachable NoExecute taints stays on such a node (the DefaultTolerationSeconds
	// admission plugin's 300s).
	DefaultTolerationSeconds time.Duration

	// TerminatedPodGCThreshold: terminated pods kept before pod GC deletes the oldest
	// (--terminated-pod-gc-threshold, 12500).
	TerminatedPodGCThreshold int
	// PodGCPeriod: how often pod GC runs (20s, as upstream's gcCheckPeriod).
	PodGCPeriod time.Duration

	// ClusterCIDR and NodeCIDRMaskSize for node IPAM (--cluster-cidr, --node-cidr-mask-size;
	// skiff allocates by default: 10.244.0.0/16 with /24 per node).
	ClusterCIDR      string
	NodeCIDRMaskSize int

	// JobPodFailureBackoff: the delay before a Job replaces a failed pod, doubled for each
	// further failure up to 6m (kube-controller-manager's DefaultJobPodFailureBackOff, 10s).
	JobPodFailureBackoff time.Duration

	// SchedulerScoring is "LeastAllocated" (default) or "MostAllocated" for the resource fit
	// score; balanced allocation is always scored too, as in kube-scheduler's default profile.
	SchedulerScoring string
	// SchedulerBindWorkers bounds the binds in flight (pipelined binding). Binding
	// throughput is this over one bind's latency: 256 keeps a loaded control plane (binds
	// taking a second) above 200 pods/s; kube-scheduler itself does not bound them.
	SchedulerBindWorkers int
	// RootCA is the cluster CA (PEM) published to every namespace as the kube-root-ca.crt
	// ConfigMap (kube-controller-manager's --root-ca-file); the manager takes it from its
	// client's configuration when unset.
	RootCA []byte
	// PodMaxInUnschedulablePodsDuration: an unschedulable pod is retried at least this often
	// even without a cluster change (kube-scheduler: 5m).
	PodMaxInUnschedulablePodsDuration time.Duration
}

// Defaulted returns o with every zero field set to its default.
func (o Options) Defaulted() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Workers == 0 {
		o.Workers = 5
	}
	def(&o.NodeMonitorGracePeriod, 40*time.Second)
	def(&o.NodeMonitorPeriod, 5*time.Second)
	def(&o.DefaultTolerationSeconds, 300*time.Second)
	if o.TerminatedPodGCThreshold == 0 {
		o.TerminatedPodGCThreshold = 12500
	}
	def(&o.PodGCPeriod, 20*time.Second)
	def(&o.JobPodFailureBackoff, 10*time.Second)
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = "10.244.0.0/16"
	}
	if o.NodeCIDRMaskSize == 0 {
		o.NodeCIDRMaskSize = 24
	}
	if o.SchedulerScoring == "" {
		o.SchedulerScoring = "LeastAllocated"
	}
	if o.SchedulerBindWorkers == 0 {
		o.SchedulerBindWorkers = 256
	}
	def(&o.PodMaxInUnschedulablePodsDuration, 5*time.Minute)
	return o
}

// Validate reports settings that cannot work.
func (o Options) Validate() error {
	if o.Workers < 0 || o.TerminatedPodGCThreshold < 0 || o.SchedulerBindWorkers < 0 {
		return fmt.Errorf("controller options: negative count")
	}
	if o.SchedulerScoring != "" && o.SchedulerScoring != "LeastAllocated" && o.SchedulerScoring != "MostAllocated" {
		return fmt.Errorf("controller options: scheduler scoring %q: want LeastAllocated or MostAllocated", o.SchedulerScoring)
	}
	if o.ClusterCIDR != "" {
		_, n, err := net.ParseCIDR(o.ClusterCIDR)
		if err != nil {
			return fmt.Errorf("controller options: cluster CIDR: %w", err)
		}
		ones, bits := n.Mask.Size()
		mask := o.NodeCIDRMaskSize
		if mask == 0 {
			mask = 24
		}
		if mask < ones || mask > bits {
			return fmt.Errorf("controller options: node CIDR mask /%d does not fit in cluster CIDR %s", mask, o.ClusterCIDR)
		}
	}
	return nil
}
