// Package trim holds the informer transform that the controllers' caches share.
package trim

import "k8s.io/apimachinery/pkg/api/meta"

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
