package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Defaults kube-scheduler uses for scoring containers that request nothing, so that such
// pods still spread (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest).
const (
	defaultMilliCPURequest int64 = 100
	defaultMemoryRequest   int64 = 200 * 1024 * 1024
)

// Resource is an amount of each resource: CPU in millicores, the rest in their base units.
type Resource struct {
	MilliCPU int64
	Memory   int64
	Pods     int64
	// Scalar holds every other resource (ephemeral-storage, extended resources).
	Scalar map[corev1.ResourceName]int64
}

func (r *Resource) add(o Resource) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.Pods += o.Pods
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[corev1.ResourceName]int64{}
		}
		r.Scalar[k] += v
	}
}

func (r *Resource) sub(o Resource) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.Pods -= o.Pods
	for k, v := range o.Scalar {
		if r.Scalar != nil {
			r.Scalar[k] -= v
		}
	}
}

func resourceFromList(l corev1.ResourceList) Resource {
	var r Resource
	for name, q := range l {
		switch name {
		case corev1.ResourceCPU:
			r.MilliCPU = q.MilliValue()
		case corev1.ResourceMemory:
			r.Memory = q.Value()
		case corev1.ResourcePods:
			r.Pods = q.Value()
		default:
			if r.Scalar == nil {
				r.Scalar = map[corev1.ResourceName]int64{}
			}
			r.Scalar[name] = q.Value()
		}
	}
	return r
}

// PodRequests is what a pod asks of a node (containers, init containers and overhead, as
// Kubernetes computes it); Pods is 1.
func PodRequests(pod *corev1.Pod) Resource {
	r := resourceFromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	r.Pods = 1
	return r
}

// podNonZeroRequests is PodRequests with kube-scheduler's defaults for containers that set
// no cpu or memory request: used only for scoring.
func podNonZeroRequests(pod *corev1.Pod) Resource {
	l := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{
		NonMissingContainerRequests: corev1.ResourceList{
			corev1.ResourceCPU:    *resourceQuantity(defaultMilliCPURequest, true),
			corev1.ResourceMemory: *resourceQuantity(defaultMemoryRequest, false),
		},
	})
	r := resourceFromList(l)
	r.Pods = 1
	return r
}

// hostPort is one used host port, as kube-scheduler keys them.
type hostPort struct {
	IP       string
	Protocol corev1.Protocol
	Port     int32
}

func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	add := func(cs []corev1.Container) {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.HostPort <= 0 {
					continue
				}
				ip, proto := p.HostIP, p.Protocol
				if ip == "" {
					ip = "0.0.0.0"
				}
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				out = append(out, hostPort{IP: ip, Protocol: proto, Port: p.HostPort})
			}
		}
	}
	add(pod.Spec.InitContainers)
	add(pod.Spec.Containers)
	return out
}

// NodeInfo is a node and the pods bound (or assumed bound) to it, with their sums.
type NodeInfo struct {
	Node        *corev1.Node
	Pods        map[types.UID]*corev1.Pod
	Allocatable Resource
	Requested   Resource
	// NonZeroRequested counts defaults for unset cpu/memory requests (scoring only).
	NonZeroRequested Resource
	UsedPorts        map[hostPort]int
	// noSchedule are the NoSchedule and NoExecute ones of EffectiveTaints(Node), computed
	// when the node changes: every decision filters hundreds of nodes, and finding each
	// one's Ready condition and filtering a fresh copy of its taints there was a third of
	// a decision's CPU (BenchmarkSchedule1000Nodes).
	noSchedule []corev1.Taint
	// controlled counts the pods not being deleted by their controller's UID: the spread
	// score reads it for every node of every decision, where walking each node's pods made
	// every decision touch every pod in the cluster (18 % of a 30,000-pod leader's CPU).
	controlled map[types.UID]int
}

// NewNodeInfo builds a NodeInfo holding the given pods.
func NewNodeInfo(node *corev1.Node, pods ...*corev1.Pod) *NodeInfo {
	ni := &NodeInfo{Pods: map[types.UID]*corev1.Pod{}, UsedPorts: map[hostPort]int{}, controlled: map[types.UID]int{}}
	ni.SetNode(node)
	for _, p := range pods {
		ni.AddPod(p)
	}
	return ni
}

// SetNode replaces the node object.
func (ni *NodeInfo) SetNode(node *corev1.Node) {
	ni.Node = node
	ni.Allocatable, ni.noSchedule = Resource{}, nil
	if node == nil {
		return
	}
	ni.Allocatable = resourceFromList(node.Status.Allocatable)
	for _, t := range EffectiveTaints(node) {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			ni.noSchedule = append(ni.noSchedule, t)
		}
	}
}

// AddPod counts pod on this node (replacing an earlier version of it).
func (ni *NodeInfo) AddPod(pod *corev1.Pod) {
	if _, ok := ni.Pods[pod.UID]; ok {
		ni.RemovePod(pod.UID)
	}
	ni.Pods[pod.UID] = pod
	ni.Requested.add(PodRequests(pod))
	ni.NonZeroRequested.add(podNonZeroRequests(pod))
	for _, hp := range podHostPorts(pod) {
		ni.UsedPorts[hp]++
	}
	if uid, ok := spreadOwner(pod); ok {
		ni.controlled[uid]++
	}
}

// spreadOwner is the controller a pod counts for in the spread score: none while the pod
// is being deleted.
func spreadOwner(pod *corev1.Pod) (types.UID, bool) {
	if pod.DeletionTimestamp != nil {
		return "", false
	}
	if r := metav1.GetControllerOfNoCopy(pod); r != nil {
		return r.UID, true
	}
	return "", false
}

// ControlledPods counts the pods on the node, not being deleted, whose controller is uid.
func (ni *NodeInfo) ControlledPods(uid types.UID) int { return ni.controlled[uid] }

// RemovePod stops counting the pod with uid; it reports whether it was there.
func (ni *NodeInfo) RemovePod(uid types.UID) bool {
	pod, ok := ni.Pods[uid]
	if !ok {
		return false
	}
	delete(ni.Pods, uid)
	ni.Requested.sub(PodRequests(pod))
	ni.NonZeroRequested.sub(podNonZeroRequests(pod))
	for _, hp := range podHostPorts(pod) {
		if ni.UsedPorts[hp]--; ni.UsedPorts[hp] <= 0 {
			delete(ni.UsedPorts, hp)
		}
	}
	if uid, ok := spreadOwner(pod); ok {
		if ni.controlled[uid]--; ni.controlled[uid] <= 0 {
			delete(ni.controlled, uid)
		}
	}
	return true
}

func (ni *NodeInfo) String() string {
	if ni.Node == nil {
		return "<no node>"
	}
	return fmt.Sprintf("%s(%d pods)", ni.Node.Name, len(ni.Pods))
}
