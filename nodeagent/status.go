package nodeagent

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// Annotations the agent keeps on each runtime container.
const (
	annoNamespace = "skiff.dev/pod-namespace"
	annoPodName   = "skiff.dev/pod-name"
	annoImage     = "skiff.dev/image"
	annoImageID   = "skiff.dev/image-id"
)

// containerIDPrefix is the runtime part of a containerID, as "containerd://".
const containerIDPrefix = "skiff://"

// statusInput is everything a pod's status is computed from.
type statusInput struct {
	pod     *corev1.Pod
	recs    podRecords
	plan    plan
	probes  probeView
	podIP   string
	hostIP  string
	now     time.Time
	deleted bool // the pod is being deleted: nothing will restart
}

// computeStatus builds the pod's status from what the node observes, the
// way the kubelet's generateAPIPodStatus does. Timestamps come from the
// containers and from the old status, so computing it twice from the same
// observations gives the same status, and no update is sent.
func computeStatus(in statusInput) corev1.PodStatus {
	pod := in.pod
	old := pod.Status
	st := corev1.PodStatus{
		HostIP:   in.hostIP,
		PodIP:    in.podIP,
		QOSClass: old.QOSClass,
	}
	if st.QOSClass == "" {
		st.QOSClass = qosClass(pod)
	}
	if in.hostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: in.hostIP}}
	}
	if in.podIP != "" {
		st.PodIPs = []corev1.PodIP{{IP: in.podIP}}
	}
	st.StartTime = old.StartTime
	if st.StartTime == nil {
		t := metav1.NewTime(in.now)
		st.StartTime = &t
	}

	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		st.InitContainerStatuses = append(st.InitContainerStatuses, containerStatus(in, c, "PodInitializing"))
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		reason := "ContainerCreating"
		if !in.plan.initDone {
			reason = "PodInitializing"
		}
		st.ContainerStatuses = append(st.ContainerStatuses, containerStatus(in, c, reason))
	}

	st.Phase = podPhase(pod, st, in.plan)
	if old.Phase == corev1.PodSucceeded || old.Phase == corev1.PodFailed {
		st.Phase = old.Phase // terminal phases never change back
	}
	st.Conditions = podConditions(pod, st, in)
	return st
}

// containerStatus reports one container; waitingReason is used when it has
// never run and nothing more specific is known.
func containerStatus(in statusInput, c *corev1.Container, waitingReason string) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: false, Started: new(bool)}
	r := in.recs.latest(c.Name)
	if w, ok := in.plan.waiting[c.Name]; ok {
		cs.State.Waiting = &w
	} else if r == nil {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waitingReason}
	}
	if r == nil {
		return cs
	}
	cs.RestartCount = int32(r.Attempt)
	cs.ContainerID = containerIDPrefix + r.ID
	if img := r.Status.Annotations[annoImage]; img != "" {
		cs.Image = img
	}
	cs.ImageID = r.Status.Annotations[annoImageID]
	switch {
	case cs.State.Waiting != nil:
		// A restart is pending: the last run is lastState.
		cs.LastTerminationState.Terminated = terminated(r)
	case r.running():
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(r.Status.StartedAt)}
		started := in.probes.started(r.ID)
		cs.Started = &started
		cs.Ready = started && in.probes.ready(r.ID) && !in.deleted
		if prev := in.recs.previous(c.Name); prev != nil {
			cs.LastTerminationState.Terminated = terminated(prev)
		}
	default:
		cs.State.Terminated = terminated(r)
		if prev := in.recs.previous(c.Name); prev != nil {
			cs.LastTerminationState.Terminated = terminated(prev)
		}
	}
	return cs
}

func terminated(r *record) *corev1.ContainerStateTerminated {
	reason := r.Status.Reason
	if reason == "" {
		reason = runtime.ReasonError
	}
	return &corev1.ContainerStateTerminated{
		ExitCode:    int32(r.Status.ExitCode),
		Reason:      reason,
		StartedAt:   metav1.NewTime(r.Status.StartedAt),
		FinishedAt:  metav1.NewTime(r.Status.FinishedAt),
		ContainerID: containerIDPrefix + r.ID,
	}
}

// podPhase is the kubelet's getPhase.
func podPhase(pod *corev1.Pod, st corev1.PodStatus, p plan) corev1.PodPhase {
	if p.failed {
		return corev1.PodFailed
	}
	if !p.initDone {
		return corev1.PodPending
	}
	var running, waiting, stopped, succeeded int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		switch {
		case pod.Spec.RestartPolicy == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		default:
			return corev1.PodRunning
		}
	}
	return corev1.PodPending
}

// podConditions computes PodReadyToStartContainers, Initialized,
// ContainersReady and Ready, and keeps PodScheduled and any condition the
// agent does not own. Transition times move only when a status changes.
func podConditions(pod *corev1.Pod, st corev1.PodStatus, in statusInput) []corev1.PodCondition {
	var unready []string
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	terminal := st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed
	set := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, msg
		}
		return c
	}
	notReadyReason, notReadyMsg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if terminal {
		notReadyReason, notReadyMsg = "PodCompleted", ""
	}
	var uninit []string
	for _, cs := range st.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			uninit = append(uninit, cs.Name)
		}
	}
	initOK := in.plan.initDone || len(uninit) == 0
	owned := []corev1.PodCondition{
		set(corev1.PodReadyToStartContainers, !terminal || in.recs.anyRunning(), "", ""),
		set(corev1.PodInitialized, initOK, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(uninit, " "))),
		set(corev1.ContainersReady, len(unready) == 0 && !terminal, notReadyReason, notReadyMsg),
		set(corev1.PodReady, len(unready) == 0 && !terminal && readinessGatesPass(pod), notReadyReason, notReadyMsg),
	}
	ownedTypes := map[corev1.PodConditionType]bool{}
	for _, c := range owned {
		ownedTypes[c.Type] = true
	}
	var out []corev1.PodCondition
	hasScheduled := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			hasScheduled = true
		}
		if !ownedTypes[c.Type] {
			out = append(out, c)
		}
	}
	if !hasScheduled {
		out = append(out, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(in.now)})
	}
	for _, c := range owned {
		c.LastTransitionTime = metav1.NewTime(in.now)
		for _, o := range pod.Status.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		out = append(out, c)
	}
	order := map[corev1.PodConditionType]int{
		corev1.PodReadyToStartContainers: 0, corev1.PodInitialized: 1, corev1.PodReady: 2,
		corev1.ContainersReady: 3, corev1.PodScheduled: 4,
	}
	sort.SliceStable(out, func(i, j int) bool {
		oi, iok := order[out[i].Type]
		oj, jok := order[out[j].Type]
		if !iok {
			oi = 5
		}
		if !jok {
			oj = 5
		}
		return oi < oj
	})
	return out
}

// readinessGatesPass: every spec.readinessGates condition is True.
func readinessGatesPass(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		ok := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// qosClass is Kubernetes' QoS rule, for pods whose status lacks it.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	any, guaranteed := false, true
	all := append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if hasReq || hasLim {
				any = true
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}
