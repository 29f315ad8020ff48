// Package garbagecollector deletes objects whose owners are gone and carries out the
// foreground and orphan deletion policies, by ownerReferences, over every resource the
// apiserver serves (discovered at start), as Kubernetes' garbage collector does. The
// decisions are pure functions in this file; gc.go watches and acts.
package garbagecollector

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// OwnerState is what is known of one owner reference's target.
type OwnerState int

const (
	OwnerPresent            OwnerState = iota
	OwnerAbsent                        // not found, or found with another UID
	OwnerDeletingForeground            // present, being deleted and waiting for its dependents
)

// Action is what to do with a dependent.
type Action int

const (
	Keep              Action = iota
	DeleteBackground         // every owner is gone
	DeleteForeground         // every owner is gone and one waits for its dependents: cascade in foreground
	RemoveDanglingRef        // some owners are gone: drop those references
)

// DecideDependent is the fate of an object from the state of its owners.
func DecideDependent(refs []metav1.OwnerReference, state map[types.UID]OwnerState) Action {
	if len(refs) == 0 {
		return Keep
	}
	absent, waiting := 0, 0
	for _, r := range refs {
		switch state[r.UID] {
		case OwnerAbsent:
			absent++
		case OwnerDeletingForeground:
			waiting++
		}
	}
	switch {
	case absent == len(refs):
		return DeleteBackground
	case absent+waiting == len(refs) && waiting > 0:
		// All remaining owners are being deleted in foreground: this object goes too, and
		// its own dependents before it.
		return DeleteForeground
	case absent > 0:
		return RemoveDanglingRef
	}
	return Keep
}

// RemainingRefs drops the references to absent owners.
func RemainingRefs(refs []metav1.OwnerReference, state map[types.UID]OwnerState) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, r := range refs {
		if state[r.UID] != OwnerAbsent {
			out = append(out, r)
		}
	}
	return out
}

// Blocking reports whether a dependent holds up its owner's foreground deletion.
func Blocking(ref metav1.OwnerReference) bool {
	return ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion
}
