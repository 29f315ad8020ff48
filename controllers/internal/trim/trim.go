// Package trim holds the informer transforms that lighten what the controllers' caches hold.
package trim

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
)

// Object is the controllers' shared informers' transform: ManagedFields, and a pod's parts
// that equal another pod's are that pod's (see sharer).
func Object(obj any) (any, error) {
	obj, err := ManagedFields(obj)
	if pod, ok := obj.(*corev1.Pod); ok {
		sharePod(pod)
	}
	return obj, err
}

// ManagedFields drops metadata.managedFields from an object as an informer stores it, as
// kube-controller-manager's and kube-scheduler's informers do: no controller reads them,
// and on a leader holding every pod they were a third of each cached pod. An update built
// from a trimmed object keeps the stored managedFields (the apiserver's field manager
// takes the live object's when a request carries none).
func ManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil && m.GetManagedFields() != nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
