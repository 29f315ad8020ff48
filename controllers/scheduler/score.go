package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// MaxNodeScore is the top of every score plugin's range, as in kube-scheduler.
const MaxNodeScore int64 = 100

// Scoring picks the resource-fit strategy.
type Scoring string

const (
	LeastAllocated Scoring = "LeastAllocated"
	MostAllocated  Scoring = "MostAllocated"
)

// Score-plugin weights of kube-scheduler's default profile.
const (
	weightFit          = 1
	weightBalanced     = 1
	weightNodeAffinity = 2
	weightSpread       = 2
	weightTaint        = 3
)

// resourceScore is NodeResourcesFit's score: cpu and memory weighted equally, counting the
// pod itself and kube-scheduler's defaults for unset requests.
func resourceScore(strategy Scoring, pi *podInfo, ni *NodeInfo) int64 {
	req := pi.nonZero
	one := func(requested, alloc int64) int64 {
		if alloc == 0 {
			return 0
		}
		if requested > alloc {
			if strategy == MostAllocated {
				return MaxNodeScore
			}
			return 0
		}
		if strategy == MostAllocated {
			return requested * MaxNodeScore / alloc
		}
		return (alloc - requested) * MaxNodeScore / alloc
	}
	cpu := one(ni.NonZeroRequested.MilliCPU+req.MilliCPU, ni.Allocatable.MilliCPU)
	mem := one(ni.NonZeroRequested.Memory+req.Memory, ni.Allocatable.Memory)
	return (cpu + mem) / 2
}

// balancedScore is NodeResourcesBalancedAllocation: the closer the cpu and memory fractions
// after placing the pod, the higher: (1 - standard deviation) * MaxNodeScore.
func balancedScore(pi *podInfo, ni *NodeInfo) int64 {
	req := pi.nonZero
	frac := func(requested, alloc int64) float64 {
		if alloc == 0 {
			return 1
		}
		f := float64(requested) / float64(alloc)
		if f > 1 {
			f = 1
		}
		return f
	}
	c := frac(ni.NonZeroRequested.MilliCPU+req.MilliCPU, ni.Allocatable.MilliCPU)
	m := frac(ni.NonZeroRequested.Memory+req.Memory, ni.Allocatable.Memory)
	std := (c - m) / 2
	if std < 0 {
		std = -std
	}
	return int64((1 - std) * float64(MaxNodeScore))
}

// preferredAffinityRaw is the sum of the weights of the preferred node-affinity terms the
// node matches; normalized across nodes later.
func preferredAffinityRaw(terms *nodeaffinity.PreferredSchedulingTerms, node *corev1.Node) int64 {
	if terms == nil {
		return 0
	}
	return terms.Score(node)
}

func preferredTerms(pod *corev1.Pod) *nodeaffinity.PreferredSchedulingTerms {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return nil
	}
	t, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	if err != nil {
		return nil
	}
	return t
}

// spreadRaw counts the pods on the node that share pod's controller (same namespace, same
// controller UID): the default spreading constraint (kube-scheduler's default topology
// spread over hostname) expressed as kube-scheduler's older SelectorSpread did.
func spreadRaw(pod *corev1.Pod, ref *metav1.OwnerReference, ni *NodeInfo) int64 {
	if ref == nil {
		return 0
	}
	return int64(ni.ControlledPods(ref.UID)) // a controller's UID names one namespace's object
}

// intolerablePreferNoSchedule counts PreferNoSchedule taints the pod does not tolerate.
func intolerablePreferNoSchedule(pod *corev1.Pod, node *corev1.Node) int64 {
	var n int64
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !tolerates(pod, t) {
			n++
		}
	}
	return n
}

// normalize maps raw scores to 0..MaxNodeScore by the maximum (reverse: fewer is better),
// as kube-scheduler's DefaultNormalizeScore.
func normalize(raw []int64, reverse bool) []int64 {
	var max int64
	for _, v := range raw {
		if v > max {
			max = v
		}
	}
	out := make([]int64, len(raw))
	for i, v := range raw {
		switch {
		case max == 0 && reverse:
			out[i] = MaxNodeScore
		case max == 0:
			out[i] = 0
		case reverse:
			out[i] = MaxNodeScore - v*MaxNodeScore/max
		default:
			out[i] = v * MaxNodeScore / max
		}
	}
	return out
}

// Score ranks the feasible nodes for pod: the weighted sum of kube-scheduler's default
// score plugins (resource fit, balanced allocation, preferred node affinity, spreading,
// taint toleration).
func Score(strategy Scoring, pod *corev1.Pod, nodes []*NodeInfo) []int64 {
	return scoreInfo(strategy, newPodInfo(pod), nodes)
}

func scoreInfo(strategy Scoring, pi *podInfo, nodes []*NodeInfo) []int64 {
	pod := pi.pod
	n := len(nodes)
	affinity, spread, taints := make([]int64, n), make([]int64, n), make([]int64, n)
	terms := preferredTerms(pod)
	ref := metav1.GetControllerOfNoCopy(pod)
	total := make([]int64, n)
	for i, ni := range nodes {
		total[i] = weightFit*resourceScore(strategy, pi, ni) + weightBalanced*balancedScore(pi, ni)
		affinity[i] = preferredAffinityRaw(terms, ni.Node)
		spread[i] = spreadRaw(pod, ref, ni)
		taints[i] = intolerablePreferNoSchedule(pod, ni.Node)
	}
	affinity, spread, taints = normalize(affinity, false), normalize(spread, true), normalize(taints, true)
	for i := range total {
		total[i] += weightNodeAffinity*affinity[i] + weightSpread*spread[i] + weightTaint*taints[i]
	}
	return total
}
