package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// updateStatus computes the pod's status and, if it differs from what the API has, sends
// the difference as a strategic merge patch of the status subresource, as the kubelet's
// status manager does: no resourceVersion, so no conflict with the writes of others (the
// scheduler's binding, a controller's labels) and no read to retry one; the pod's uid in
// the patch makes sure it reaches this pod and not a new one of the same name. Status
// depends only on the spec and on what the node observes.
func (w *podWorker) updateStatus(ctx context.Context, pod *corev1.Pod, recs podRecords, p plan, deleting bool) {
	// The informer's copy can lack this worker's own last write (its event is on the way):
	// a status computed from it would restart the conditions' transition times.
	if lw := w.written; lw != nil && lw.UID == pod.UID && olderRV(pod.ResourceVersion, lw.ResourceVersion) {
		pod = lw
	}
	in := statusInput{
		pod: pod, recs: recs, plan: p, probes: w.probes,
		podIP: w.sandboxIP(), hostIP: w.a.nodeIP().String(), now: time.Now(), deleted: deleting,
	}
	if pod.Spec.HostNetwork {
		in.podIP = in.hostIP
	}
	st := computeStatus(in)
	normalizeStatus(&st)
	if isStaticPod(pod) {
		w.m.static.setStatus(pod.UID, st)
		return
	}
	if apiequality.Semantic.DeepEqual(st, pod.Status) {
		return
	}
	patch, err := statusPatch(pod.UID, pod.Status, st)
	if err != nil {
		w.a.log.Warn("pod status patch", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return
	}
	t0 := time.Now()
	updated, err := w.a.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	switch {
	case err == nil:
		w.written = updated
		w.a.log.Debug("pod status written", "pod", pod.Namespace+"/"+pod.Name, "phase", st.Phase,
			"sinceWorker", ms(time.Since(w.woken)), "patch", ms(time.Since(t0)))
	case apierrors.IsNotFound(err), apierrors.IsInvalid(err) && updatedUIDRefused(err), ctx.Err() != nil:
		// Gone, or replaced by another pod of the same name: nothing to report.
	default:
		w.a.log.Warn("updating pod status", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// statusPatch is the kubelet's status patch: a two-way strategic merge patch from the old
// status to the new one, with the pod's uid as a precondition.
func statusPatch(uid types.UID, old, updated corev1.PodStatus) ([]byte, error) {
	oldData, err := json.Marshal(corev1.Pod{Status: old})
	if err != nil {
		return nil, err
	}
	newData, err := json.Marshal(corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}, Status: updated})
	if err != nil {
		return nil, err
	}
	return strategicpatch.CreateTwoWayMergePatch(oldData, newData, corev1.Pod{})
}

// updatedUIDRefused tells a patch refused because its uid is not the stored pod's.
func updatedUIDRefused(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Details == nil {
		return false
	}
	for _, c := range se.Status().Details.Causes {
		if c.Field == "metadata.uid" {
			return true
		}
	}
	return false
}

// normalizeStatus truncates the status's timestamps to the second, as the API stores them
// (metav1.Time is seconds in JSON and in protobuf): compared with the pod read back, a
// status holding the runtime's nanoseconds always differed, and every sync wrote it again,
// each write's watch event causing the next. The kubelet's status manager does the same
// (normalizeStatus).
func normalizeStatus(st *corev1.PodStatus) {
	// A computed status shares pointers (startTime, container states) with the pod it was
	// computed from, which other goroutines read (a static pod's mirror sync): truncate a
	// copy, never through those pointers.
	*st = *st.DeepCopy()
	sec := func(t *metav1.Time) { *t = t.Rfc3339Copy() }
	if st.StartTime != nil {
		sec(st.StartTime)
	}
	for i := range st.Conditions {
		sec(&st.Conditions[i].LastProbeTime)
		sec(&st.Conditions[i].LastTransitionTime)
	}
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for i := range list {
			for _, s := range []*corev1.ContainerState{&list[i].State, &list[i].LastTerminationState} {
				if s.Running != nil {
					sec(&s.Running.StartedAt)
				}
				if s.Terminated != nil {
					sec(&s.Terminated.StartedAt)
					sec(&s.Terminated.FinishedAt)
				}
			}
		}
	}
}
