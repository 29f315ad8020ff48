// Package podutil holds the small pod predicates the workload controllers share (active,
// ready, available) and the construction of a pod from its owner's template, as
// Kubernetes' pkg/api/v1/pod and pkg/controller define them.
package podutil

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IsActive: not finished and not being deleted (upstream controller.IsPodActive).
func IsActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// Condition returns the pod's condition of type t, or nil.
func Condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// IsReady reports the Ready condition.
func IsReady(p *corev1.Pod) bool {
	c := Condition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsAvailable: ready for at least minReadySeconds at now.
func IsAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := Condition(p, corev1.PodReady)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	min := time.Duration(minReadySeconds) * time.Second
	return !c.LastTransitionTime.IsZero() && c.LastTransitionTime.Add(min).Before(now)
}

// FromTemplate builds a pod of owner from template: the template's labels, annotations,
// finalizers and spec, generateName "<owner>-", and a controller reference to owner.
func FromTemplate(template *corev1.PodTemplateSpec, namespace, generateName string, ref *metav1.OwnerReference) *corev1.Pod {
	t := template.DeepCopy()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    namespace,
			GenerateName: generateName,
			Labels:       t.Labels,
			Annotations:  t.Annotations,
			Finalizers:   t.Finalizers,
		},
		Spec: t.Spec,
	}
	if ref != nil {
		p.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return p
}

// ControllerRef is the controller owner reference a controller puts on what it creates.
func ControllerRef(owner metav1.Object, apiVersion, kind string) *metav1.OwnerReference {
	t := true
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: owner.GetName(), UID: owner.GetUID(),
		Controller: &t, BlockOwnerDeletion: &t}
}

// GenerateNamePrefix is "<name>-", cut as Kubernetes cuts it so that the generated name
// stays within 63 characters.
func GenerateNamePrefix(name string) string {
	const maxGeneratedNameLength = 58
	prefix := name + "-"
	if len(prefix) > maxGeneratedNameLength {
		prefix = prefix[:maxGeneratedNameLength]
	}
	return prefix
}
