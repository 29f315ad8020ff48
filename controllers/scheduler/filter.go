package scheduler

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Filter reasons, worded as kube-scheduler's plugins word them (they end up in the pod's
// PodScheduled condition and FailedScheduling events).
const (
	ReasonUnschedulable   = "node(s) were unschedulable"
	ReasonUntoleratedTain = "node(s) had untolerated taint(s)"
	ReasonNodeAffinity    = "node(s) didn't match Pod's node affinity/selector"
	ReasonNodePorts       = "node(s) didn't have free ports for the requested pod ports"
	ReasonTooManyPods     = "Too many pods"
	ReasonNodeNotFound    = "node(s) not found"
)

// Well-known taints (k8s.io/api/core/v1 names them TaintNode*).
var (
	taintUnschedulable = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	taintNotReady      = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	taintUnreachable   = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
)

// filterFunc is one filter plugin: the reasons the node does not fit the pod (none: fits).
type filterFunc func(pi *podInfo, ni *NodeInfo) []string

// podInfo is what the filters and scores read of the pod being scheduled, computed once per
// scheduling cycle (kube-scheduler's PreFilter and PreScore state) rather than once per
// node: with a thousand nodes, recomputing the pod's requests per node dominated a decision.
type podInfo struct {
	pod *corev1.Pod
	req Resource // PodRequests
	// scalars are req.Scalar's names, sorted for the order of the reasons: sorting them
	// for every node was 1,300 allocations a decision among 1,000 nodes.
	scalars  []corev1.ResourceName
	nonZero  Resource // podNonZeroRequests, for scoring
	ports    []hostPort
	affinity nodeaffinity.RequiredNodeAffinity
}

func newPodInfo(pod *corev1.Pod) *podInfo {
	req := PodRequests(pod)
	return &podInfo{pod: pod, req: req, scalars: slices.Sorted(maps.Keys(req.Scalar)), nonZero: podNonZeroRequests(pod),
		ports: podHostPorts(pod), affinity: nodeaffinity.GetRequiredNodeAffinity(pod)}
}

// filters run in kube-scheduler's default-profile order; a node's reasons come from the
// first filter that rejects it.
var filters = []filterFunc{
	filterNodeUnschedulable,
	filterTaintToleration,
	filterNodeAffinity,
	filterNodePorts,
	filterResourcesFit,
}

// Filter reports why pod cannot run on the node (nil: it can).
func Filter(pod *corev1.Pod, ni *NodeInfo) []string { return filterInfo(newPodInfo(pod), ni) }

func filterInfo(pi *podInfo, ni *NodeInfo) []string {
	if ni == nil || ni.Node == nil {
		return []string{ReasonNodeNotFound}
	}
	for _, f := range filters {
		if reasons := f(pi, ni); len(reasons) > 0 {
			return reasons
		}
	}
	return nil
}

func tolerates(pod *corev1.Pod, t *corev1.Taint) bool {
	return corev1helpers.TolerationsTolerateTaint(klog.Background(), pod.Spec.Tolerations, t, false)
}

func filterNodeUnschedulable(pi *podInfo, ni *NodeInfo) []string {
	if ni.Node.Spec.Unschedulable && !tolerates(pi.pod, &taintUnschedulable) {
		return []string{ReasonUnschedulable}
	}
	return nil
}

// EffectiveTaints are the node's taints plus, for a node whose Ready condition is not True
// but that the node lifecycle controller has not tainted yet, the NoSchedule taint it will
// get. Skiff differs on purpose here: kube-scheduler trusts the taints alone, which leaves
// a window in which a freshly failed node still receives pods.
func EffectiveTaints(node *corev1.Node) []corev1.Taint {
	taints := node.Spec.Taints
	var implied *corev1.Taint
	switch readyStatus(node) {
	case corev1.ConditionTrue:
	case corev1.ConditionFalse:
		implied = &taintNotReady
	default:
		implied = &taintUnreachable
	}
	if implied == nil {
		return taints
	}
	for _, t := range taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return taints
		}
	}
	return append(append([]corev1.Taint(nil), taints...), *implied)
}

func readyStatus(node *corev1.Node) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func filterTaintToleration(pi *podInfo, ni *NodeInfo) []string {
	for i := range ni.noSchedule {
		if !tolerates(pi.pod, &ni.noSchedule[i]) {
			return []string{ReasonUntoleratedTain}
		}
	}
	return nil
}

// MatchesNodeSelectorAndAffinity is the NodeAffinity filter: spec.nodeSelector and the
// required node affinity terms.
func MatchesNodeSelectorAndAffinity(pod *corev1.Pod, node *corev1.Node) bool {
	ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)
	return ok && err == nil
}

func filterNodeAffinity(pi *podInfo, ni *NodeInfo) []string {
	if ok, err := pi.affinity.Match(ni.Node); !ok || err != nil {
		return []string{ReasonNodeAffinity}
	}
	return nil
}

// portsConflict reports whether want collides with a used port: the same port and protocol
// on the same IP, or on 0.0.0.0 on either side.
func portsConflict(used map[hostPort]int, want hostPort) bool {
	for u := range used {
		if u.Port != want.Port || u.Protocol != want.Protocol {
			continue
		}
		if u.IP == want.IP || u.IP == "0.0.0.0" || want.IP == "0.0.0.0" {
			return true
		}
	}
	return false
}

func filterNodePorts(pi *podInfo, ni *NodeInfo) []string {
	for _, hp := range pi.ports {
		if portsConflict(ni.UsedPorts, hp) {
			return []string{ReasonNodePorts}
		}
	}
	return nil
}

// filterResourcesFit is NodeResourcesFit: every resource the pod requests must fit in the
// node's allocatable minus what its pods request; all shortfalls are reported.
func filterResourcesFit(pi *podInfo, ni *NodeInfo) []string {
	req := pi.req
	var reasons []string
	if ni.Requested.Pods+1 > ni.Allocatable.Pods {
		reasons = append(reasons, ReasonTooManyPods)
	}
	if req.MilliCPU > 0 && req.MilliCPU > ni.Allocatable.MilliCPU-ni.Requested.MilliCPU {
		reasons = append(reasons, "Insufficient cpu")
	}
	if req.Memory > 0 && req.Memory > ni.Allocatable.Memory-ni.Requested.Memory {
		reasons = append(reasons, "Insufficient memory")
	}
	for _, name := range pi.scalars {
		if v := req.Scalar[name]; v > 0 && v > ni.Allocatable.Scalar[name]-ni.Requested.Scalar[name] {
			reasons = append(reasons, "Insufficient "+string(name))
		}
	}
	return reasons
}
