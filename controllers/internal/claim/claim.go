// Package claim adopts and releases the objects a controller selects, by ownerReferences,
// as Kubernetes' ControllerRefManager does: an orphan that matches the selector is adopted,
// an owned object that no longer matches is released, and objects of other controllers are
// left alone.
package claim

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// Patcher applies a strategic merge patch to one object (kind-specific).
type Patcher func(ctx context.Context, namespace, name string, patch []byte) error

// Manager claims objects for one owner.
type Manager struct {
	Owner    metav1.Object
	Ref      metav1.OwnerReference // the controller reference to set on adopted objects
	Selector labels.Selector
	Patch    Patcher
	// CanAdopt re-reads the owner from the API before the first adoption: an owner that was
	// deleted meanwhile must not adopt (upstream RecheckDeletionTimestamp).
	CanAdopt func(ctx context.Context) error
	checked  error
	didCheck bool
}

// Decide is the pure part of claiming: what to do with one object.
type Decision int

const (
	Ignore  Decision = iota // someone else's, or not ours to take
	Keep                    // already ours and matching
	Adopt                   // orphan that matches
	Release                 // ours but no longer matching
)

// Decide says what the owner should do with obj.
func Decide(owner metav1.Object, selector labels.Selector, obj metav1.Object) Decision {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref != nil {
		if ref.UID != owner.GetUID() {
			return Ignore
		}
		if selector.Matches(labels.Set(obj.GetLabels())) {
			return Keep
		}
		if owner.GetDeletionTimestamp() != nil {
			return Ignore
		}
		return Release
	}
	if owner.GetDeletionTimestamp() != nil || obj.GetDeletionTimestamp() != nil || !selector.Matches(labels.Set(obj.GetLabels())) {
		return Ignore
	}
	return Adopt
}

// Claim returns the objects the owner keeps, adopting and releasing on the way.
func Claim[T metav1.Object](ctx context.Context, m *Manager, objs []T) ([]T, error) {
	var out []T
	var errs []error
	for _, o := range objs {
		switch Decide(m.Owner, m.Selector, o) {
		case Keep:
			out = append(out, o)
		case Adopt:
			if err := m.adopt(ctx, o); err != nil {
				if !apierrors.IsNotFound(err) {
					errs = append(errs, err)
				}
				continue
			}
			out = append(out, o)
		case Release:
			if err := m.release(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("claim: %w (and %d more)", errs[0], len(errs)-1)
	}
	return out, nil
}

func (m *Manager) adopt(ctx context.Context, o metav1.Object) error {
	if !m.didCheck && m.CanAdopt != nil {
		m.checked, m.didCheck = m.CanAdopt(ctx), true
	}
	if m.checked != nil {
		return fmt.Errorf("cannot adopt %s: %w", o.GetName(), m.checked)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{m.Ref},
		"uid":             o.GetUID(),
	}})
	if err != nil {
		return err
	}
	return m.Patch(ctx, o.GetNamespace(), o.GetName(), patch)
}

func (m *Manager) release(ctx context.Context, o metav1.Object) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []map[string]any{{"$patch": "delete", "uid": m.Owner.GetUID()}},
		"uid":             o.GetUID(),
	}})
	if err != nil {
		return err
	}
	return m.Patch(ctx, o.GetNamespace(), o.GetName(), patch)
}

// RecheckOwner builds a CanAdopt that fetches the owner fresh and refuses if it is gone,
// replaced (another UID) or being deleted.
func RecheckOwner(uid types.UID, get func(ctx context.Context) (metav1.Object, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		fresh, err := get(ctx)
		if err != nil {
			return err
		}
		if fresh.GetUID() != uid {
			return fmt.Errorf("original owner %v is gone: got uid %v", uid, fresh.GetUID())
		}
		if fresh.GetDeletionTimestamp() != nil {
			return fmt.Errorf("owner %v is being deleted", uid)
		}
		return nil
	}
}
