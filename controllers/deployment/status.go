package deployment

import (
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons, as Kubernetes' deployment util names them (kubectl matches on some).
const (
	ReasonNewRSCreated          = "NewReplicaSetCreated"
	ReasonFoundNewRS            = "FoundNewReplicaSet"
	ReasonRSUpdated             = "ReplicaSetUpdated"
	ReasonNewRSAvailable        = "NewReplicaSetAvailable"
	ReasonTimedOut              = "ProgressDeadlineExceeded"
	ReasonPaused                = "DeploymentPaused"
	ReasonResumed               = "DeploymentResumed"
	ReasonMinimumAvailable      = "MinimumReplicasAvailable"
	ReasonMinimumUnavailable    = "MinimumReplicasUnavailable"
	ReasonFailedRSCreate        = "ReplicaSetCreateError"
	ReasonNewRSAvailableMessage = "ReplicaSet %q has successfully progressed."
)

// GetCondition returns the condition of type t, or nil.
func GetCondition(st appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// NewCondition is a condition stamped now.
func NewCondition(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string, now time.Time) appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg,
		LastUpdateTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
}

// SetCondition sets c, keeping the transition time when the status does not change and
// doing nothing when status and reason are the same.
func SetCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	cur := GetCondition(*st, c.Type)
	if cur != nil && cur.Status == c.Status && cur.Reason == c.Reason {
		return
	}
	if cur != nil && cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	RemoveCondition(st, c.Type)
	st.Conditions = append(st.Conditions, c)
}

// RemoveCondition drops the condition of type t.
func RemoveCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	var out []appsv1.DeploymentCondition
	for _, c := range st.Conditions {
		if c.Type != t {
			out = append(out, c)
		}
	}
	st.Conditions = out
}

// HasProgressDeadline: progressDeadlineSeconds set and not "forever".
func HasProgressDeadline(d *appsv1.Deployment) bool {
	return d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds != math.MaxInt32
}

// CalculateStatus is the Deployment's status from its ReplicaSets.
func CalculateStatus(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now time.Time) appsv1.DeploymentStatus {
	var actual, ready, available, terminating int32
	haveTerminating := false
	for _, rs := range all {
		if rs == nil {
			continue
		}
		actual += rs.Status.Replicas
		ready += rs.Status.ReadyReplicas
		available += rs.Status.AvailableReplicas
		if rs.Status.TerminatingReplicas != nil {
			terminating += *rs.Status.TerminatingReplicas
			haveTerminating = true
		}
	}
	unavailable := max(0, totalReplicas(all)-available)
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            actual,
		ReadyReplicas:       ready,
		AvailableReplicas:   available,
		UnavailableReplicas: unavailable,
		CollisionCount:      d.Status.CollisionCount,
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	if haveTerminating {
		st.TerminatingReplicas = &terminating
	}
	for _, c := range d.Status.Conditions {
		st.Conditions = append(st.Conditions, *c.DeepCopy())
	}
	if available >= *d.Spec.Replicas-MaxUnavailable(d) {
		SetCondition(&st, NewCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumAvailable, "Deployment has minimum availability.", now))
	} else {
		SetCondition(&st, NewCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumUnavailable, "Deployment does not have minimum availability.", now))
	}
	return st
}

// Complete: every desired replica updated and available, and the spec observed.
func Complete(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	n := *d.Spec.Replicas
	return st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n && st.ObservedGeneration >= d.Generation
}

// Progressing: more updated, ready or available pods than last time, or fewer old ones.
func Progressing(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	old := d.Status
	return st.UpdatedReplicas > old.UpdatedReplicas ||
		(st.Replicas-st.UpdatedReplicas) < (old.Replicas-old.UpdatedReplicas) ||
		st.ReadyReplicas > old.ReadyReplicas ||
		st.AvailableReplicas > old.AvailableReplicas
}

// TimedOut: no progress for progressDeadlineSeconds since the Progressing condition was
// last updated.
func TimedOut(d *appsv1.Deployment, st *appsv1.DeploymentStatus, now time.Time) bool {
	if !HasProgressDeadline(d) {
		return false
	}
	c := GetCondition(*st, appsv1.DeploymentProgressing)
	if c == nil || c.Reason == ReasonNewRSAvailable {
		return false
	}
	if c.Reason == ReasonTimedOut {
		return true
	}
	deadline := c.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second)
	return deadline.Before(now)
}

// RolloutStatus is the status after a rollout step, with the Progressing condition moved as
// upstream's syncRolloutStatus moves it.
func RolloutStatus(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now time.Time) appsv1.DeploymentStatus {
	st := CalculateStatus(d, all, newRS, now)
	if !HasProgressDeadline(d) {
		RemoveCondition(&st, appsv1.DeploymentProgressing)
		return st
	}
	cur := GetCondition(st, appsv1.DeploymentProgressing)
	if st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == ReasonNewRSAvailable {
		return st // complete already; nothing to move
	}
	switch {
	case Complete(d, &st):
		msg := fmt.Sprintf("Deployment %q has successfully progressed.", d.Name)
		if newRS != nil {
			msg = fmt.Sprintf(ReasonNewRSAvailableMessage, newRS.Name)
		}
		SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSAvailable, msg, now))
	case Progressing(d, &st):
		msg := fmt.Sprintf("Deployment %q is progressing.", d.Name)
		if newRS != nil {
			msg = fmt.Sprintf("ReplicaSet %q is progressing.", newRS.Name)
		}
		c := NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, msg, now)
		// Progress refreshes the update time (the deadline restarts) but not the transition.
		if cur != nil && cur.Status == corev1.ConditionTrue {
			c.LastTransitionTime = cur.LastTransitionTime
		}
		RemoveCondition(&st, appsv1.DeploymentProgressing)
		st.Conditions = append(st.Conditions, c)
	case TimedOut(d, &st, now):
		msg := fmt.Sprintf("Deployment %q has timed out progressing.", d.Name)
		if newRS != nil {
			msg = fmt.Sprintf("ReplicaSet %q has timed out progressing.", newRS.Name)
		}
		SetCondition(&st, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonTimedOut, msg, now))
	}
	return st
}

// RecheckAfter is when a rollout that is neither complete nor timed out must be looked at
// again to notice its deadline passing (0: no need).
func RecheckAfter(d *appsv1.Deployment, st appsv1.DeploymentStatus, now time.Time) time.Duration {
	c := GetCondition(st, appsv1.DeploymentProgressing)
	if !HasProgressDeadline(d) || c == nil || c.Reason == ReasonNewRSAvailable || c.Reason == ReasonTimedOut || Complete(d, &st) {
		return 0
	}
	after := c.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(now)
	if after < time.Second {
		after = time.Second
	}
	return after
}
