package scheduler

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const (
	bindRetryDelay          = time.Second
	unschedulableRetryDelay = 100 * time.Millisecond
)

var (
	createOptions = metav1.CreateOptions{}
	updateOptions = metav1.UpdateOptions{}
)

func metaFor(ns, name string, uid types.UID) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid}
}

// SetPodCondition returns status with cond set, and whether anything changed; the
// transition time moves only when the condition's status does.
func SetPodCondition(status corev1.PodStatus, cond corev1.PodCondition, at time.Time) (corev1.PodStatus, bool) {
	out := *status.DeepCopy()
	for i, c := range out.Conditions {
		if c.Type != cond.Type {
			continue
		}
		if c.Status == cond.Status && c.Reason == cond.Reason && c.Message == cond.Message {
			return status, false
		}
		cond.LastTransitionTime = c.LastTransitionTime
		if c.Status != cond.Status {
			cond.LastTransitionTime = metav1.NewTime(at)
		}
		out.Conditions[i] = cond
		return out, true
	}
	cond.LastTransitionTime = metav1.NewTime(at)
	out.Conditions = append(out.Conditions, cond)
	return out, true
}
