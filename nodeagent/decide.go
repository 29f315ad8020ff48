package nodeagent

import (
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// record is one container of a pod as the runtime knows it.
type record struct {
	ID      string
	Name    string
	Attempt int
	Status  runtime.Status
}

func (r *record) running() bool { return r.Status.State == runtime.StateRunning }

// podRecords holds a pod's containers by name, latest attempt first.
type podRecords map[string][]record

func groupRecords(uid types.UID, list []runtime.Status) podRecords {
	out := podRecords{}
	for _, st := range list {
		u, name, attempt, ok := parseContainerID(st.ID)
		if !ok || u != uid {
			continue
		}
		out[name] = append(out[name], record{ID: st.ID, Name: name, Attempt: attempt, Status: st})
	}
	for _, rs := range out {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Attempt > rs[j].Attempt })
	}
	return out
}

func (p podRecords) latest(name string) *record {
	if rs := p[name]; len(rs) > 0 {
		return &rs[0]
	}
	return nil
}

func (p podRecords) previous(name string) *record {
	if rs := p[name]; len(rs) > 1 {
		return &rs[1]
	}
	return nil
}

func (p podRecords) anyRunning() bool {
	for _, rs := range p {
		for i := range rs {
			if rs[i].running() {
				return true
			}
		}
	}
	return false
}

// probeView is what deciding and reporting need from the probes.
type probeView interface {
	// livenessFailed: the container must be killed (liveness or startup
	// probe failed past its threshold).
	mustKill(id string) (bool, string)
	ready(id string) bool
	started(id string) bool
}

// backoffView tells whether a container restart must wait.
type backoffView interface {
	IsInBackOffSince(id string, eventTime time.Time) bool
	Get(id string) time.Duration
}

type startAction struct {
	c       *corev1.Container
	init    bool
	attempt int
	// restart is true when an earlier attempt exists, so the back-off
	// advances when it starts.
	restart      bool
	prevFinished time.Time
}

type killAction struct {
	id, reason string
}

// plan is what one sync of a running pod does, decided from the pod, its
// containers and the probes, before anything is done.
type plan struct {
	starts  []startAction
	kills   []killAction
	removes []string
	// waiting explains, per container, why it is not running now.
	waiting map[string]corev1.ContainerStateWaiting
	// requeue is when the pod needs another look without any event.
	requeue time.Duration
	// initDone: every init container has succeeded.
	initDone bool
	// failed: an init container failed and the pod will not retry it.
	failed bool
}

func (p *plan) wakeIn(d time.Duration) {
	if d > 0 && (p.requeue == 0 || d < p.requeue) {
		p.requeue = d
	}
}

func backoffKey(uid types.UID, name string) string { return string(uid) + "/" + name }

// shouldRestart applies the pod's restartPolicy to an exited container.
func shouldRestart(policy corev1.RestartPolicy, exitCode int) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

// decide computes the plan for a pod that is neither deleted nor
// terminal, as the kubelet's computePodActions: init containers one at a
// time and in order, then all app containers; exited containers restart
// per restartPolicy, after the crash-loop back-off.
func decide(pod *corev1.Pod, recs podRecords, probes probeView, bo backoffView, now time.Time) plan {
	p := plan{waiting: map[string]corev1.ContainerStateWaiting{}}
	p.removes = oldAttempts(recs)

	// restartOrWait starts the next attempt of an exited container, or
	// reports CrashLoopBackOff while its back-off lasts.
	restartOrWait := func(c *corev1.Container, r *record, init bool) {
		key := backoffKey(pod.UID, c.Name)
		if bo.IsInBackOffSince(key, r.Status.FinishedAt) {
			delay := bo.Get(key)
			p.waiting[c.Name] = corev1.ContainerStateWaiting{
				Reason:  "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, pod.Name, pod.Namespace, pod.UID),
			}
			p.wakeIn(r.Status.FinishedAt.Add(delay).Sub(now) + 10*time.Millisecond)
			return
		}
		p.starts = append(p.starts, startAction{c: c, init: init, attempt: r.Attempt + 1, restart: true, prevFinished: r.Status.FinishedAt})
	}

	p.initDone = initDone(pod, recs)
	if !p.initDone {
		for i := range pod.Spec.InitContainers {
			c := &pod.Spec.InitContainers[i]
			r := recs.latest(c.Name)
			switch {
			case r == nil:
				p.starts = append(p.starts, startAction{c: c, init: true})
			case r.running():
				if kill, why := probes.mustKill(r.ID); kill {
					p.kills = append(p.kills, killAction{r.ID, why})
				}
			case r.Status.ExitCode == 0:
				continue
			case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
				p.failed = true
			default:
				restartOrWait(c, r, true)
			}
			break // one init container at a time
		}
		return p
	}

	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		r := recs.latest(c.Name)
		switch {
		case r == nil:
			p.starts = append(p.starts, startAction{c: c})
		case r.running():
			if kill, why := probes.mustKill(r.ID); kill {
				p.kills = append(p.kills, killAction{r.ID, why})
			} else if img := r.Status.Annotations[annoImage]; img != "" && img != c.Image {
				// The image is the one mutable field of a container:
				// a new one means a new container, as in Kubernetes.
				p.kills = append(p.kills, killAction{r.ID, "image changed"})
			}
		case shouldRestart(pod.Spec.RestartPolicy, r.Status.ExitCode) ||
			(r.Status.Annotations[annoImage] != "" && r.Status.Annotations[annoImage] != c.Image && pod.Spec.RestartPolicy != corev1.RestartPolicyNever):
			restartOrWait(c, r, false)
		}
	}
	return p
}

// initDone reports whether the pod is past its init containers: all have
// succeeded, or app containers already ran (init records may be gone).
func initDone(pod *corev1.Pod, recs podRecords) bool {
	for i := range pod.Spec.Containers {
		if recs.latest(pod.Spec.Containers[i].Name) != nil {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		r := recs.latest(pod.Spec.InitContainers[i].Name)
		if r == nil || r.running() || r.Status.ExitCode != 0 {
			return false
		}
	}
	return true
}

// oldAttempts lists exited containers older than the last two attempts of
// their name: the latest is the current state, the one before it is
// lastState and `logs --previous`; nothing older is reported.
func oldAttempts(recs podRecords) []string {
	var out []string
	for _, rs := range recs {
		for i := 2; i < len(rs); i++ {
			if !rs[i].running() {
				out = append(out, rs[i].ID)
			}
		}
	}
	sort.Strings(out)
	return out
}
