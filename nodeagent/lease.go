package nodeagent

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// nodeLeaseNamespace holds one Lease per node, the cheap heartbeat the node
// lifecycle controller watches.
const nodeLeaseNamespace = "kube-node-lease"

// runLease renews the node's Lease every quarter of its duration (10 s by
// default) until ctx ends.
func (a *Agent) runLease(ctx context.Context) {
	interval := a.cfg.LeaseDuration / 4
	var last *coordinationv1.Lease
	for {
		var err error
		if last, err = a.renewLease(ctx, last); err != nil && ctx.Err() == nil {
			a.log.Warn("renewing node lease", "err", err)
		}
		// Jittered as the kubelet's lease controller (wait.JitterUntil, 0.04): nodes
		// started together do not renew in lockstep.
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait.Jitter(interval, 0.04)):
		}
	}
}

// renewLease creates the Lease or moves its renewTime to now. It starts from the Lease it
// last wrote, as the kubelet's lease controller does, so a renewal is one write and no
// read; a conflict (someone else wrote it) costs a fresh read on the next tick.
func (a *Agent) renewLease(ctx context.Context, last *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	leases := a.cfg.Client.CoordinationV1().Leases(nodeLeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	if last != nil {
		l := last.DeepCopy()
		l.Spec.RenewTime = &now
		if updated, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err == nil {
			return updated, nil
		} else if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return last, fmt.Errorf("update lease: %w", err)
		}
	}
	l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: nodeLeaseNamespace},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(a.cfg.NodeName),
				LeaseDurationSeconds: ptr.To(int32(a.cfg.LeaseDuration / time.Second)),
				RenewTime:            &now,
			},
		}
		a.setLeaseOwner(ctx, l)
		created, err := leases.Create(ctx, l, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create lease: %w", err)
		}
		return created, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get lease: %w", err)
	}
	l = l.DeepCopy()
	l.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(a.cfg.LeaseDuration / time.Second))
	l.Spec.RenewTime = &now
	if len(l.OwnerReferences) == 0 {
		a.setLeaseOwner(ctx, l)
	}
	// A conflict means someone else wrote it; the next tick retries with
	// fresh data, as the kubelet's lease controller does.
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update lease: %w", err)
	}
	return updated, nil
}

// setLeaseOwner makes the Node own its Lease, so deleting the Node deletes
// the Lease (garbage collection), as the kubelet does.
func (a *Agent) setLeaseOwner(ctx context.Context, l *coordinationv1.Lease) {
	n, err := a.cfg.Client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return
	}
	l.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID,
	}}
}
