package replicaset

import (
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

// BurstReplicas caps the creations or deletions of one sync (kube-controller-manager's
// burstReplicas).
const BurstReplicas = 500

// ReplicaDiff says how many pods to create (positive) or delete (negative) to go from
// active to desired, at most burst at a time.
func ReplicaDiff(active int, desired int32, burst int) int {
	diff := int(desired) - active
	if diff > burst {
		return burst
	}
	if diff < -burst {
		return -burst
	}
	return diff
}

// SlowStartBatches splits n creations into batches of 1, 2, 4, ...: a controller whose
// pods are all rejected fails after one call rather than n.
func SlowStartBatches(n int) []int {
	var out []int
	for size := 1; n > 0; size *= 2 {
		b := min(size, n)
		out = append(out, b)
		n -= b
	}
	return out
}

// rankedPod is a pod with the number of active pods of related owners on its node.
type rankedPod struct {
	pod  *corev1.Pod
	rank int
}

// podPhaseOrder: pending pods go before unknown before running.
var podPhaseOrder = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// lessToDelete is upstream's ActivePodsWithRanks ordering: the pod to delete first sorts
// first. Unassigned, then pending/unknown/running, then not ready, then on a crowded node,
// then ready for less time, then more restarts, then newer.
func lessToDelete(a, b rankedPod, now time.Time) bool {
	pa, pb := a.pod, b.pod
	if (pa.Spec.NodeName == "") != (pb.Spec.NodeName == "") {
		return pa.Spec.NodeName == ""
	}
	if podPhaseOrder[pa.Status.Phase] != podPhaseOrder[pb.Status.Phase] {
		return podPhaseOrder[pa.Status.Phase] < podPhaseOrder[pb.Status.Phase]
	}
	if podutil.IsReady(pa) != podutil.IsReady(pb) {
		return !podutil.IsReady(pa)
	}
	if a.rank != b.rank {
		return a.rank > b.rank
	}
	if podutil.IsReady(pa) && podutil.IsReady(pb) {
		ta, tb := readySince(pa), readySince(pb)
		if !ta.Equal(tb) {
			return ta.After(tb)
		}
	}
	if ra, rb := restarts(pa), restarts(pb); ra != rb {
		return ra > rb
	}
	if !pa.CreationTimestamp.Equal(&pb.CreationTimestamp) {
		return pa.CreationTimestamp.After(pb.CreationTimestamp.Time)
	}
	return pa.Name > pb.Name
}

func readySince(p *corev1.Pod) time.Time {
	if c := podutil.Condition(p, corev1.PodReady); c != nil {
		return c.LastTransitionTime.Time
	}
	return time.Time{}
}

func restarts(p *corev1.Pod) int32 {
	var max int32
	for _, s := range p.Status.ContainerStatuses {
		if s.RestartCount > max {
			max = s.RestartCount
		}
	}
	return max
}

// PodsToDelete picks n of pods to delete, worst first. related are the active pods of the
// owner and its siblings (for a Deployment: all its ReplicaSets), whose count per node ranks
// doubled-up pods first.
func PodsToDelete(pods, related []*corev1.Pod, n int, now time.Time) []*corev1.Pod {
	if n <= 0 {
		return nil
	}
	perNode := map[string]int{}
	for _, p := range related {
		if p.Spec.NodeName != "" && podutil.IsActive(p) {
			perNode[p.Spec.NodeName]++
		}
	}
	ranked := make([]rankedPod, len(pods))
	for i, p := range pods {
		r := 0
		if p.Spec.NodeName != "" {
			r = perNode[p.Spec.NodeName]
		}
		ranked[i] = rankedPod{pod: p, rank: r}
	}
	sort.SliceStable(ranked, func(i, j int) bool { return lessToDelete(ranked[i], ranked[j], now) })
	n = min(n, len(ranked))
	out := make([]*corev1.Pod, n)
	for i := range n {
		out[i] = ranked[i].pod
	}
	return out
}

// CalculateStatus is the ReplicaSet's status for its active pods (and those being deleted)
// at now; manageErr, when set, becomes a ReplicaFailure condition.
func CalculateStatus(rs *appsv1.ReplicaSet, active []*corev1.Pod, terminating int32, manageErr error, failReason string, now time.Time) appsv1.ReplicaSetStatus {
	st := *rs.Status.DeepCopy()
	tmpl := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	var fully, ready, avail int32
	for _, p := range active {
		if tmpl.Matches(labels.Set(p.Labels)) {
			fully++
		}
		if podutil.IsReady(p) {
			ready++
			if podutil.IsAvailable(p, rs.Spec.MinReadySeconds, now) {
				avail++
			}
		}
	}
	st.Replicas = int32(len(active))
	st.FullyLabeledReplicas = fully
	st.ReadyReplicas = ready
	st.AvailableReplicas = avail
	st.TerminatingReplicas = &terminating
	st.ObservedGeneration = rs.Generation
	var conds []appsv1.ReplicaSetCondition
	var existing *appsv1.ReplicaSetCondition
	for i, c := range st.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure {
			existing = &st.Conditions[i]
			continue
		}
		conds = append(conds, c)
	}
	if manageErr != nil {
		if existing != nil {
			conds = append(conds, *existing)
		} else {
			conds = append(conds, appsv1.ReplicaSetCondition{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
				Reason: failReason, Message: manageErr.Error(), LastTransitionTime: metaTime(now)})
		}
	}
	st.Conditions = conds
	return st
}
