package daemonset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/controllers/deployment"
	"github.com/skiff-dev/skiff/controllers/internal/claim"
	"github.com/skiff-dev/skiff/controllers/internal/podutil"
)

// RevisionPatch is the data a ControllerRevision stores: a strategic merge patch that
// replaces the template, which is what `kubectl rollout undo ds` applies (upstream getPatch).
func RevisionPatch(ds *appsv1.DaemonSet) ([]byte, error) {
	raw, err := json.Marshal(ds)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	spec, _ := obj["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	if tmpl == nil {
		return nil, fmt.Errorf("daemonset %s/%s: no template", ds.Namespace, ds.Name)
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

// history returns the current revision's hash, creating or re-numbering its
// ControllerRevision, and the old revisions.
func (c *Controller) history(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector) (string, []*appsv1.ControllerRevision, error) {
	all, err := c.crLister.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return "", nil, err
	}
	m := &claim.Manager{
		Owner: ds, Ref: *podutil.ControllerRef(ds, controllerKind.GroupVersion().String(), controllerKind.Kind), Selector: sel,
		Patch: func(ctx context.Context, ns, name string, patch []byte) error {
			_, err := c.client.AppsV1().ControllerRevisions(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
		CanAdopt: claim.RecheckOwner(ds.UID, func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
		}),
	}
	owned, err := claim.Claim(ctx, m, all)
	if err != nil {
		return "", nil, err
	}
	patch, err := RevisionPatch(ds)
	if err != nil {
		return "", nil, err
	}
	var maxRev int64
	var current []*appsv1.ControllerRevision
	var old []*appsv1.ControllerRevision
	for _, h := range owned {
		maxRev = max(maxRev, h.Revision)
		if bytes.Equal(h.Data.Raw, patch) {
			current = append(current, h)
		} else {
			old = append(old, h)
		}
	}
	slices.SortFunc(current, func(a, b *appsv1.ControllerRevision) int { return int(b.Revision - a.Revision) })
	// Duplicates of the current revision: keep the newest.
	for _, dup := range current[min(1, len(current)):] {
		if err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Delete(ctx, dup.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return "", nil, err
		}
	}
	var cur *appsv1.ControllerRevision
	if len(current) == 0 {
		if cur, err = c.snapshot(ctx, ds, patch, maxRev+1); err != nil {
			return "", nil, err
		}
	} else {
		cur = current[0]
		if cur.Revision < maxRev {
			// A rollback to an older template: it becomes the newest revision again.
			upd := cur.DeepCopy()
			upd.Revision = maxRev + 1
			if cur, err = c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
				return "", nil, err
			}
		}
	}
	hash := cur.Labels[HashLabel]
	if hash == "" {
		hash = cur.Name
	}
	return hash, old, nil
}

func (c *Controller) snapshot(ctx context.Context, ds *appsv1.DaemonSet, patch []byte, revision int64) (*appsv1.ControllerRevision, error) {
	hash := deployment.ComputeHash(&ds.Spec.Template, ds.Status.CollisionCount)
	lbls := maps.Clone(ds.Spec.Template.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[HashLabel] = hash
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: ds.Name + "-" + hash, Namespace: ds.Namespace, Labels: lbls,
			Annotations:     maps.Clone(ds.Annotations),
			OwnerReferences: []metav1.OwnerReference{*podutil.ControllerRef(ds, controllerKind.GroupVersion().String(), controllerKind.Kind)}},
		Data:     runtime.RawExtension{Raw: patch},
		Revision: revision,
	}
	out, err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Create(ctx, cr, metav1.CreateOptions{})
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return out, err
	}
	existing, gerr := c.client.AppsV1().ControllerRevisions(ds.Namespace).Get(ctx, cr.Name, metav1.GetOptions{})
	if gerr != nil {
		return nil, gerr
	}
	if ref := metav1.GetControllerOfNoCopy(existing); ref != nil && ref.UID == ds.UID && bytes.Equal(existing.Data.Raw, patch) {
		return existing, nil
	}
	// A hash collision with someone else's revision: bump collisionCount and try again.
	upd := ds.DeepCopy()
	n := int32(0)
	if upd.Status.CollisionCount != nil {
		n = *upd.Status.CollisionCount
	}
	n++
	upd.Status.CollisionCount = &n
	if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("daemonset %s/%s: revision name %s collides; collisionCount now %d", ds.Namespace, ds.Name, cr.Name, n)
}

// cleanupHistory deletes the oldest revisions beyond revisionHistoryLimit that no live pod
// carries.
func (c *Controller) cleanupHistory(ctx context.Context, ds *appsv1.DaemonSet, old []*appsv1.ControllerRevision, nodes []NodeState) error {
	limit := 10
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	if len(old) <= limit {
		return nil
	}
	live := map[string]bool{}
	for _, n := range nodes {
		for _, p := range n.Pods {
			if h := p.Labels[HashLabel]; h != "" {
				live[h] = true
			}
		}
	}
	var removable []*appsv1.ControllerRevision
	for _, h := range old {
		if !live[h.Labels[HashLabel]] {
			removable = append(removable, h)
		}
	}
	slices.SortFunc(removable, func(a, b *appsv1.ControllerRevision) int { return int(a.Revision - b.Revision) })
	for _, h := range removable[:max(0, min(len(removable), len(old)-limit))] {
		if err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
