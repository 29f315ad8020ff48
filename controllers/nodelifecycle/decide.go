package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// Managed taints: the ones this controller adds and removes.
var (
	TaintNotReadyNoExecute    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
	TaintUnreachableNoExecute = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	TaintNotReadyNoSchedule   = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	TaintUnreachableNoSched   = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
	TaintUnschedulable        = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	managed                   = []corev1.Taint{TaintNotReadyNoExecute, TaintUnreachableNoExecute, TaintNotReadyNoSchedule, TaintUnreachableNoSched, TaintUnschedulable}
)

// conditionsSetUnknown are the kubelet-owned conditions set Unknown on a silent node.
var conditionsSetUnknown = []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure}

// MarkUnknown returns the node's conditions with the kubelet's conditions set Unknown, as
// upstream words it, and whether anything changed.
func MarkUnknown(conds []corev1.NodeCondition, now time.Time) ([]corev1.NodeCondition, bool) {
	out := append([]corev1.NodeCondition(nil), conds...)
	changed := false
	for _, t := range conditionsSetUnknown {
		found := false
		for i := range out {
			if out[i].Type != t {
				continue
			}
			found = true
			if out[i].Status != corev1.ConditionUnknown {
				out[i].Status = corev1.ConditionUnknown
				out[i].Reason = "NodeStatusUnknown"
				out[i].Message = "Kubelet stopped posting node status."
				out[i].LastTransitionTime = metav1.NewTime(now)
				changed = true
			}
		}
		if !found {
			out = append(out, corev1.NodeCondition{Type: t, Status: corev1.ConditionUnknown, Reason: "NodeStatusNeverUpdated",
				Message: "Kubelet never posted node status.", LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)})
			changed = true
		}
	}
	return out, changed
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// WantedTaints are the managed taints the node should carry: not-ready for Ready=False,
// unreachable for Ready=Unknown (both NoSchedule and NoExecute), unschedulable for a
// cordoned node.
func WantedTaints(n *corev1.Node) []corev1.Taint {
	var want []corev1.Taint
	switch readyStatus(n) {
	case corev1.ConditionFalse:
		want = append(want, TaintNotReadyNoSchedule, TaintNotReadyNoExecute)
	case corev1.ConditionUnknown:
		want = append(want, TaintUnreachableNoSched, TaintUnreachableNoExecute)
	}
	if n.Spec.Unschedulable {
		want = append(want, TaintUnschedulable)
	}
	return want
}

func isManaged(t corev1.Taint) bool {
	for _, m := range managed {
		if m.Key == t.Key && m.Effect == t.Effect {
			return true
		}
	}
	return false
}

// ReconcileTaints returns the node's taints with the managed ones made equal to want
// (keeping other taints and the time a kept taint was added), and whether they changed.
func ReconcileTaints(cur []corev1.Taint, want []corev1.Taint, now time.Time) ([]corev1.Taint, bool) {
	var out []corev1.Taint
	changed := false
	has := func(list []corev1.Taint, t corev1.Taint) bool {
		for _, x := range list {
			if x.Key == t.Key && x.Effect == t.Effect {
				return true
			}
		}
		return false
	}
	for _, t := range cur {
		if isManaged(t) && !has(want, t) {
			changed = true
			continue
		}
		out = append(out, t)
	}
	for _, t := range want {
		if !has(cur, t) {
			if t.Effect == corev1.TaintEffectNoExecute {
				at := metav1.NewTime(now)
				t.TimeAdded = &at
			}
			out = append(out, t)
			changed = true
		}
	}
	return out, changed
}

// EvictAt says when a pod on a node with the given taints must go: never (ok false), or at
// the returned time (now or earlier: at once). Pods that do not tolerate a NoExecute taint go
// at once; tolerated ones after the shortest tolerationSeconds counted from when the taint
// was added. A pod with no toleration of its own for the not-ready/unreachable taints is
// treated as tolerating them for defaultToleration, as the DefaultTolerationSeconds
// admission plugin would have given it (skiff's apiserver does not add those tolerations).
func EvictAt(pod *corev1.Pod, taints []corev1.Taint, defaultToleration time.Duration, now time.Time) (time.Time, bool) {
	var at time.Time
	evict := false
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		added := now
		if t.TimeAdded != nil {
			added = t.TimeAdded.Time
		}
		var d time.Duration
		forever := false
		tolerated := false
		for _, tol := range pod.Spec.Tolerations {
			if !tol.ToleratesTaint(klog.Background(), t, false) {
				continue
			}
			tolerated = true
			if tol.TolerationSeconds == nil {
				forever = true
				break
			}
			if s := time.Duration(*tol.TolerationSeconds) * time.Second; d == 0 || s < d {
				d = s
			}
		}
		if !tolerated && (t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable) {
			tolerated, d = true, defaultToleration
		}
		switch {
		case !tolerated:
			return now, true
		case forever:
			continue
		}
		when := added.Add(d)
		if !evict || when.Before(at) {
			at, evict = when, true
		}
	}
	return at, evict
}
