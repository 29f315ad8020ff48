package nodeagent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// runNode registers the Node (retrying until the API answers), then keeps
// its Lease and status fresh until ctx ends.
func (a *Agent) runNode(ctx context.Context) error {
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if err := a.registerNode(ctx); err != nil {
			a.log.Warn("registering node", "err", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil // ctx ended
	}
	a.log.Info("node registered")
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.runLease(ctx)
	}()
	a.runNodeStatus(ctx)
	<-done
	return nil
}

// registerNode creates the Node, or brings an existing one (from an earlier
// run of this agent) up to date, as the kubelet's tryRegisterWithAPIServer.
func (a *Agent) registerNode(ctx context.Context) error {
	want, err := a.initialNode()
	if err != nil {
		return err
	}
	nodes := a.cfg.Client.CoreV1().Nodes()
	created, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		a.pods.setNode(created)
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node: %w", err)
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		updated := existing.DeepCopy()
		if updated.Labels == nil {
			updated.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			updated.Labels[k] = v
		}
		if updated.Spec.PodCIDR == "" && want.Spec.PodCIDR != "" {
			updated.Spec.PodCIDR, updated.Spec.PodCIDRs = want.Spec.PodCIDR, want.Spec.PodCIDRs
		}
		if !apiequality.Semantic.DeepEqual(updated.ObjectMeta, existing.ObjectMeta) || !apiequality.Semantic.DeepEqual(updated.Spec, existing.Spec) {
			if updated, err = nodes.Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		a.pods.setNode(updated)
		return nil
	})
}

// initialNode is the Node this agent registers: labels, podCIDR, and a
// first status so the node is schedulable from its first appearance.
func (a *Agent) initialNode() (*corev1.Node, error) {
	labels := map[string]string{
		corev1.LabelHostname:   a.cfg.NodeName,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: goarch,
	}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: labels},
	}
	if a.cfg.PodCIDR != "" {
		n.Spec.PodCIDR = a.cfg.PodCIDR
		n.Spec.PodCIDRs = []string{a.cfg.PodCIDR}
	}
	st, err := a.nodeStatus(nil, time.Now())
	if err != nil {
		return nil, err
	}
	n.Status = st
	return n, nil
}

// runNodeStatus checks the node's status every StatusUpdateFrequency and
// posts it when a condition changed or StatusReportFrequency has passed.
func (a *Agent) runNodeStatus(ctx context.Context) {
	var lastReport time.Time
	var lastConds []corev1.NodeCondition
	t := time.NewTicker(a.cfg.StatusUpdateFrequency)
	defer t.Stop()
	for {
		now := time.Now()
		conds, err := a.nodeConditions(nil, now)
		if err != nil {
			a.log.Warn("computing node conditions", "err", err)
		} else if !sameConditions(conds, lastConds) || now.Sub(lastReport) >= a.cfg.StatusReportFrequency {
			if err := a.postNodeStatus(ctx); err != nil {
				a.log.Warn("updating node status", "err", err)
			} else {
				lastReport, lastConds = now, conds
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// postNodeStatus writes the node's status through the status subresource.
func (a *Agent) postNodeStatus(ctx context.Context) error {
	nodes := a.cfg.Client.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// Deleted under us (e.g. by an admin): register again.
			return a.registerNode(ctx)
		}
		if err != nil {
			return err
		}
		st, err := a.nodeStatus(n.Status.Conditions, time.Now())
		if err != nil {
			return err
		}
		n = n.DeepCopy()
		n.Status = st
		updated, err := nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		a.pods.setNode(updated)
		return nil
	})
}

func sameConditions(a, b []corev1.NodeCondition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status || a[i].Reason != b[i].Reason {
			return false
		}
	}
	return true
}
