package daemonset

import (
	"slices"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	intstrutil "k8s.io/apimachinery/pkg/util/intstr"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

// HashLabel marks each daemon pod and ControllerRevision with the revision's hash.
const HashLabel = appsv1.DefaultDaemonSetUniqueLabelKey // "controller-revision-hash"

// AddDaemonTolerations adds the tolerations Kubernetes gives every daemon pod
// (pkg/controller/daemon/util.AddOrUpdateDaemonPodTolerations): daemons stay on not-ready
// and unreachable nodes, and schedule onto nodes under pressure or cordoned.
func AddDaemonTolerations(spec *corev1.PodSpec) {
	add := func(key string, effect corev1.TaintEffect) {
		t := corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect}
		for _, have := range spec.Tolerations {
			if have.MatchToleration(&t) {
				return
			}
		}
		spec.Tolerations = append(spec.Tolerations, t)
	}
	add(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)
	if spec.HostNetwork {
		add(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)
	}
}

// PinToNode replaces the pod's required node affinity with one term matching the node by
// name, as the upstream controller does (the node was already checked against the original
// terms); the scheduler then binds the pod there.
func PinToNode(spec *corev1.PodSpec, node string) {
	term := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{
		Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{term}}
}

// TargetNode is the node a daemon pod is for: its nodeName, or the node its affinity pins.
func TargetNode(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	a := p.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 {
		return ""
	}
	for _, f := range terms[0].MatchFields {
		if f.Key == metav1.ObjectNameField && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
			return f.Values[0]
		}
	}
	return ""
}

// ShouldRun says whether a daemon pod should be started on node (shouldRun) and whether one
// already there may stay (shouldContinue), as upstream's NodeShouldRunDaemonPod: nodeName,
// nodeSelector and required affinity must match; an untolerated NoSchedule or NoExecute taint
// prevents a new pod, and only an untolerated NoExecute one evicts a running pod.
func ShouldRun(node *corev1.Node, ds *appsv1.DaemonSet) (shouldRun, shouldContinue bool) {
	pod := &corev1.Pod{Spec: *ds.Spec.Template.Spec.DeepCopy()}
	AddDaemonTolerations(&pod.Spec)
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		return false, false
	}
	if ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); err != nil || !ok {
		return false, false
	}
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations,
		func(t *corev1.Taint) bool {
			return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
		}, false)
	if !untolerated {
		return true, true
	}
	_, evicting := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations,
		func(t *corev1.Taint) bool { return t.Effect == corev1.TaintEffectNoExecute }, false)
	return false, !evicting
}

// AllowsSurge reports a RollingUpdate with a positive maxSurge.
func AllowsSurge(ds *appsv1.DaemonSet) bool {
	surge, _, _ := MaxSurgeUnavailable(ds, 1)
	return surge > 0
}

// MaxSurgeUnavailable scales the rolling update bounds to the desired pod count (both
// rounded up); with both zero, maxUnavailable is 1, as upstream.
func MaxSurgeUnavailable(ds *appsv1.DaemonSet, desired int) (surge, unavailable int, err error) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil {
		return 0, 0, nil
	}
	if ru.MaxSurge != nil {
		if surge, err = intstrutil.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true); err != nil {
			return 0, 0, err
		}
	}
	if ru.MaxUnavailable != nil {
		if unavailable, err = intstrutil.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, true); err != nil {
			return 0, 0, err
		}
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable, nil
}

// byAge sorts pods oldest first, running before pending at the same age (upstream
// podByCreationTimestampAndPhase).
func byAge(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		if (a.Status.Phase == corev1.PodRunning) != (b.Status.Phase == corev1.PodRunning) {
			return a.Status.Phase == corev1.PodRunning
		}
		return a.Name < b.Name
	})
}

// NodeState is what the manage step knows about one node.
type NodeState struct {
	Node           *corev1.Node
	Pods           []*corev1.Pod // the daemon's pods targeted at this node, terminating ones included
	ShouldRun      bool
	ShouldContinue bool
}

// NodeAction is what to do on one node: create a pod, delete some, and failed pods to delete
// (subject to the caller's back-off).
type NodeAction struct {
	Create       bool
	Delete       []*corev1.Pod
	DeleteFailed []*corev1.Pod
}

// PlanNode is upstream's podsShouldBeOnNode: a node that should run a daemon and has none
// needs one; extra pods go (with surge, one old and one new may overlap until the new one is
// available); succeeded pods go, failed ones are recreated; a node that may no longer run
// the daemon loses all its pods.
func PlanNode(ds *appsv1.DaemonSet, st NodeState, hash string, now time.Time) NodeAction {
	var a NodeAction
	switch {
	case st.ShouldRun && len(st.Pods) == 0:
		a.Create = true
	case st.ShouldContinue:
		var running []*corev1.Pod
		for _, p := range st.Pods {
			switch {
			case p.DeletionTimestamp != nil:
			case p.Status.Phase == corev1.PodFailed:
				a.DeleteFailed = append(a.DeleteFailed, p)
			case p.Status.Phase == corev1.PodSucceeded:
				a.Delete = append(a.Delete, p)
			default:
				running = append(running, p)
			}
		}
		if len(running) <= 1 {
			break
		}
		byAge(running)
		if !AllowsSurge(ds) {
			a.Delete = append(a.Delete, running[1:]...)
			break
		}
		var oldestNew, oldestOld *corev1.Pod
		for _, p := range running {
			if p.Labels[HashLabel] == hash {
				if oldestNew == nil {
					oldestNew = p
					continue
				}
			} else if oldestOld == nil {
				oldestOld = p
				continue
			}
			a.Delete = append(a.Delete, p)
		}
		if oldestNew != nil && oldestOld != nil &&
			(!podutil.IsReady(oldestOld) || podutil.IsAvailable(oldestNew, ds.Spec.MinReadySeconds, now)) {
			a.Delete = append(a.Delete, oldestOld)
		}
	case len(st.Pods) > 0:
		for _, p := range st.Pods {
			if p.DeletionTimestamp == nil {
				a.Delete = append(a.Delete, p)
			}
		}
	}
	return a
}

// updatedPods splits a node's live pods into the one of the current revision and the old
// one; ok is false when there are more than one of either (the manage step prunes them).
func updatedPods(pods []*corev1.Pod, hash string) (newPod, oldPod *corev1.Pod, ok bool) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Labels[HashLabel] == hash {
			if newPod != nil {
				return nil, nil, false
			}
			newPod = p
		} else {
			if oldPod != nil {
				return nil, nil, false
			}
			oldPod = p
		}
	}
	return newPod, oldPod, true
}

// RollingPlan is one step of a rolling update: old pods to delete and nodes that get a new
// pod next to their old one (surge).
type RollingPlan struct {
	Delete      []*corev1.Pod
	CreateOnto  []string
	Unavailable int // counted against maxUnavailable, for tests and logs
}

// PlanRollingUpdate is upstream's rollingUpdate over the nodes that should run the daemon
// (sorted by name, so the order is stable). Without surge, old pods that are not available
// are replaced at once and available ones while fewer than maxUnavailable pods are
// unavailable; with surge, a new pod starts beside an available old one while fewer than
// maxSurge new pods are starting, and the old pod goes once the new one is available.
func PlanRollingUpdate(ds *appsv1.DaemonSet, nodes []NodeState, hash string, now time.Time) (RollingPlan, error) {
	var eligible []NodeState
	for _, n := range nodes {
		if n.ShouldRun {
			eligible = append(eligible, n)
		}
	}
	slices.SortFunc(eligible, func(a, b NodeState) int {
		switch {
		case a.Node.Name < b.Node.Name:
			return -1
		case a.Node.Name > b.Node.Name:
			return 1
		}
		return 0
	})
	maxSurge, maxUnavailable, err := MaxSurgeUnavailable(ds, len(eligible))
	if err != nil {
		return RollingPlan{}, err
	}
	minReady := ds.Spec.MinReadySeconds
	var plan RollingPlan
	if maxSurge == 0 {
		var replace, candidates []*corev1.Pod
		unavailable := 0
		for _, n := range eligible {
			newPod, oldPod, ok := updatedPods(n.Pods, hash)
			switch {
			case !ok, newPod == nil && oldPod == nil, newPod != nil && oldPod != nil:
				unavailable++ // the manage step creates or prunes here
			case newPod != nil:
				if !podutil.IsAvailable(newPod, minReady, now) {
					unavailable++
				}
			case !podutil.IsAvailable(oldPod, minReady, now):
				replace = append(replace, oldPod)
			case unavailable < maxUnavailable:
				candidates = append(candidates, oldPod)
			}
		}
		room := max(0, min(maxUnavailable-unavailable, len(candidates)))
		plan.Delete = append(replace, candidates[:room]...)
		plan.Unavailable = unavailable
		return plan, nil
	}
	var allowed, candidates []string
	surging := 0
	for _, n := range eligible {
		newPod, oldPod, ok := updatedPods(n.Pods, hash)
		if !ok {
			surging++
			continue
		}
		switch {
		case oldPod == nil:
			// nothing old here; the manage step creates a missing pod
		case newPod == nil:
			switch {
			case !podutil.IsAvailable(oldPod, minReady, now):
				allowed = append(allowed, n.Node.Name)
			case surging < maxSurge:
				candidates = append(candidates, n.Node.Name)
			}
		case !podutil.IsAvailable(newPod, minReady, now):
			surging++
		default:
			plan.Delete = append(plan.Delete, oldPod)
		}
	}
	room := max(0, min(maxSurge-surging, len(candidates)))
	plan.CreateOnto = append(allowed, candidates[:room]...)
	plan.Unavailable = surging
	return plan, nil
}

// Status computes the DaemonSet status from the node states (upstream
// updateDaemonSetStatus): the oldest pod on each node counts.
func Status(ds *appsv1.DaemonSet, nodes []NodeState, hash string, now time.Time) appsv1.DaemonSetStatus {
	st := appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, CollisionCount: ds.Status.CollisionCount,
		Conditions: ds.Status.Conditions}
	for _, n := range nodes {
		var pods []*corev1.Pod
		for _, p := range n.Pods {
			if p.DeletionTimestamp == nil || (p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed) {
				pods = append(pods, p)
			}
		}
		if !n.ShouldRun {
			if len(pods) > 0 {
				st.NumberMisscheduled++
			}
			continue
		}
		st.DesiredNumberScheduled++
		if len(pods) == 0 {
			continue
		}
		st.CurrentNumberScheduled++
		pods = slices.Clone(pods)
		byAge(pods)
		p := pods[0]
		if podutil.IsReady(p) {
			st.NumberReady++
			if podutil.IsAvailable(p, ds.Spec.MinReadySeconds, now) {
				st.NumberAvailable++
			}
		}
		if p.Labels[HashLabel] == hash {
			st.UpdatedNumberScheduled++
		}
	}
	st.NumberUnavailable = max(0, st.DesiredNumberScheduled-st.NumberAvailable)
	return st
}
