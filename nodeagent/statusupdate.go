package nodeagent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// updateStatus computes the pod's status and writes it through the status
// subresource if it differs from what the API has. On a conflict it reads
// the pod again and reapplies the status, which depends only on the spec
// and on what the node observes.
func (w *podWorker) updateStatus(ctx context.Context, pod *corev1.Pod, recs podRecords, p plan, deleting bool) {
	in := statusInput{
		pod: pod, recs: recs, plan: p, probes: w.probes,
		podIP: w.sandboxIP(), hostIP: w.a.nodeIP().String(), now: time.Now(), deleted: deleting,
	}
	if pod.Spec.HostNetwork {
		in.podIP = in.hostIP
	}
	st := computeStatus(in)
	if isStaticPod(pod) {
		w.m.static.setStatus(pod.UID, st)
		return
	}
	if apiequality.Semantic.DeepEqual(st, pod.Status) {
		return
	}
	pods := w.a.cfg.Client.CoreV1().Pods(pod.Namespace)
	cur := pod
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		next := cur.DeepCopy()
		in.pod = cur
		next.Status = computeStatus(in)
		_, err := pods.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			fresh, gerr := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			if fresh.UID != pod.UID {
				return nil // replaced by another pod of the same name
			}
			cur = fresh
		}
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		w.a.log.Warn("updating pod status", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}
