package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/nodeagent/image"
	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// errWaiting: a container cannot start yet; w.waiting says why.
var errWaiting = errors.New("container waiting")

// startContainer pulls the container's image if needed, builds its spec and
// starts it. Failures are recorded in w.waiting with the reason the kubelet
// reports (ErrImagePull, ImagePullBackOff, CreateContainerConfigError,
// RunContainerError) and retried with back-off.
func (w *podWorker) startContainer(ctx context.Context, pod *corev1.Pod, s startAction) error {
	c := s.c
	startKey := backoffKey(pod.UID, c.Name) + "/start"
	now := time.Now()
	if w.m.backoff.IsInBackOffSinceUpdate(startKey, now) {
		return errWaiting // the reason recorded by the last failure stands
	}
	fail := func(reason string, err error) error {
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}
		w.m.backoff.Next(startKey, now)
		w.retryAt[c.Name] = now.Add(w.m.backoff.Get(startKey))
		return err
	}

	t0 := time.Now()
	rootfs, err := w.ensureImage(ctx, pod, c)
	w.steps.image = time.Since(t0)
	if err != nil {
		return err
	}
	t0 = time.Now()
	spec, err := w.containerSpec(ctx, pod, c, s.attempt, rootfs)
	w.steps.spec = time.Since(t0)
	if errors.Is(err, errSeccompProfile) {
		// The reason the kubelet reports when the runtime cannot load the
		// profile it was given.
		return fail("CreateContainerError", err)
	}
	if err != nil {
		return fail("CreateContainerConfigError", err)
	}
	t0 = time.Now()
	_, err = w.a.cfg.Runtime.Start(ctx, spec)
	w.steps.start = time.Since(t0)
	if errors.Is(err, runtime.ErrExists) {
		// Left over by a crash between start and record: replace it.
		if rerr := w.a.cfg.Runtime.Remove(ctx, spec.ID); rerr == nil || errors.Is(rerr, runtime.ErrNotFound) {
			_, err = w.a.cfg.Runtime.Start(ctx, spec)
		}
	}
	if err != nil {
		return fail("RunContainerError", err)
	}
	delete(w.waiting, c.Name)
	delete(w.retryAt, c.Name)
	w.m.backoff.Reset(startKey)
	if s.restart {
		// The crash-loop back-off grows with every restart and is
		// measured from the end of the run that preceded it.
		w.m.backoff.Next(backoffKey(pod.UID, c.Name), s.prevFinished)
	}
	w.a.log.Info("container started", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "attempt", s.attempt,
		"sinceWorker", ms(time.Since(w.woken)), "sandbox", ms(w.steps.sandbox), "image", ms(w.steps.image),
		"spec", ms(w.steps.spec), "start", ms(w.steps.start))
	return nil
}

// ensureImage makes the container's image available per its
// imagePullPolicy and returns its layers and config.
func (w *podWorker) ensureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (image.Rootfs, error) {
	store := w.a.cfg.Images
	if store == nil {
		return image.Rootfs{Image: image.Image{Ref: c.Image}}, nil // hollow: nothing to pull
	}
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = corev1.PullIfNotPresent
		if !strings.Contains(c.Image, "@") && (strings.HasSuffix(c.Image, ":latest") || !hasTag(c.Image)) {
			policy = corev1.PullAlways
		}
	}
	have, err := store.Rootfs(ctx, c.Image)
	present := err == nil
	if err != nil && !errors.Is(err, image.ErrNotFound) {
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: "InvalidImageName", Message: err.Error()}
		return image.Rootfs{}, err
	}
	switch {
	case policy == corev1.PullNever && !present:
		err := fmt.Errorf("container image %q is not present with pull policy of Never", c.Image)
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: err.Error()}
		return image.Rootfs{}, err
	case policy == corev1.PullNever, policy == corev1.PullIfNotPresent && present:
		return have, nil
	}
	if retryIn, err := w.a.pull(ctx, pod, c.Image); err != nil {
		reason := "ErrImagePull"
		if errors.Is(err, errPullBackoff) {
			reason = "ImagePullBackOff"
		}
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}
		w.retryAt[c.Name] = time.Now().Add(retryIn)
		return image.Rootfs{}, err
	}
	rootfs, err := store.Rootfs(ctx, c.Image)
	if err != nil {
		return image.Rootfs{}, fmt.Errorf("image %s after pull: %w", c.Image, err)
	}
	return rootfs, nil
}

// ms is a duration in milliseconds with a decimal, for log lines.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// hasTag reports whether a reference names a tag ("repo:tag", not the
// port of "host:port/repo").
func hasTag(ref string) bool {
	i := strings.LastIndex(ref, ":")
	return i > strings.LastIndex(ref, "/")
}

// containerSpec turns a pod's container into the runtime's spec.
func (w *podWorker) containerSpec(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt int, rootfs image.Rootfs) (runtime.Spec, error) {
	env, err := w.a.containerEnv(ctx, pod, c, w.sandboxIP())
	if err != nil {
		return runtime.Spec{}, err
	}
	imgEnv := rootfs.Config.Env
	merged := mergeEnv(imgEnv, env)
	args := rootfs.Config.Argv(expandAll(c.Command, env), expandAll(c.Args, env))
	if len(args) == 0 && w.a.hollow {
		args = []string{"hollow"}
	}
	if len(args) == 0 {
		return runtime.Spec{}, fmt.Errorf("no command specified for container %q", c.Name)
	}
	uid, gid, err := rootfs.Config.IDs()
	if err != nil {
		return runtime.Spec{}, err
	}
	sec := effectiveSecurity(pod, c)
	if sec.RunAsUser != nil {
		uid = uint32(*sec.RunAsUser)
	}
	if sec.RunAsGroup != nil {
		gid = uint32(*sec.RunAsGroup)
	}
	if sec.RunAsNonRoot != nil && *sec.RunAsNonRoot && uid == 0 {
		return runtime.Spec{}, errors.New("container has runAsNonRoot and image will run as root")
	}
	wd := c.WorkingDir
	if wd == "" {
		wd = rootfs.Config.WorkingDir
	}
	mounts, err := w.containerMounts(pod, c)
	if err != nil {
		return runtime.Spec{}, err
	}
	security := runtimeSecurity(pod, c, sec)
	if security.Seccomp, err = w.a.seccompProfile(sec.SeccompProfile); err != nil {
		return runtime.Spec{}, err
	}
	imageID := rootfs.Digest
	if imageID != "" {
		imageID = repoOf(rootfs.Ref) + "@" + imageID
	}
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	spec := runtime.Spec{
		ID:           containerID(pod.UID, c.Name, attempt),
		CgroupParent: podCgroup(pod.UID),
		Layers:       rootfs.LayerDirs,
		Args:         args,
		Env:          merged,
		WorkingDir:   wd,
		UID:          uid,
		GID:          gid,
		Hostname:     hostname,
		NetNSPath:    w.sandboxNetNS(),
		Resources:    containerResources(c),
		Mounts:       mounts,
		Security:     security,
		Annotations: map[string]string{
			annoNamespace: pod.Namespace,
			annoPodName:   pod.Name,
			annoImage:     c.Image,
			annoImageID:   imageID,
		},
	}
	return spec, nil
}

// repoOf strips the tag from a normalized reference.
func repoOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

func podCgroup(uid types.UID) string { return "pod" + string(uid) }

// containerResources maps requests and limits to cgroup settings the way
// the kubelet does: cpu requests become shares, cpu limits a CFS quota over
// a 100 ms period, memory limits the memory limit.
func containerResources(c *corev1.Container) runtime.Resources {
	var r runtime.Resources
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		r.MemoryLimitBytes = q.Value()
	}
	cpuReq, hasReq := c.Resources.Requests[corev1.ResourceCPU]
	cpuLim, hasLim := c.Resources.Limits[corev1.ResourceCPU]
	if !hasReq && hasLim {
		cpuReq, hasReq = cpuLim, true
	}
	if hasReq {
		r.CPUShares = uint64(max(cpuReq.MilliValue()*1024/1000, 2))
	} else {
		r.CPUShares = 2 // BestEffort, as the kubelet's minimum shares
	}
	if hasLim {
		const period = 100000
		r.CPUPeriodMicros = period
		r.CPUQuotaMicros = max(cpuLim.MilliValue()*period/1000, 1000)
	}
	return r
}

func effectiveSecurity(pod *corev1.Pod, c *corev1.Container) corev1.SecurityContext {
	var out corev1.SecurityContext
	if psc := pod.Spec.SecurityContext; psc != nil {
		out.RunAsUser, out.RunAsGroup, out.RunAsNonRoot = psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot
		out.SeccompProfile = psc.SeccompProfile
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			out.RunAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			out.RunAsGroup = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			out.RunAsNonRoot = sc.RunAsNonRoot
		}
		if sc.SeccompProfile != nil {
			out.SeccompProfile = sc.SeccompProfile
		}
		out.Capabilities, out.Privileged = sc.Capabilities, sc.Privileged
		out.ReadOnlyRootFilesystem, out.AllowPrivilegeEscalation = sc.ReadOnlyRootFilesystem, sc.AllowPrivilegeEscalation
	}
	return out
}

// runtimeSecurity applies capabilities add/drop to the default set,
// privileged, readOnlyRootFilesystem, allowPrivilegeEscalation and
// supplemental groups.
func runtimeSecurity(pod *corev1.Pod, c *corev1.Container, sc corev1.SecurityContext) runtime.Security {
	var s runtime.Security
	s.Privileged = sc.Privileged != nil && *sc.Privileged
	s.ReadOnlyRootfs = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	s.NoNewPrivileges = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	if caps := sc.Capabilities; caps != nil && (len(caps.Add) > 0 || len(caps.Drop) > 0) {
		s.Capabilities = adjustCapabilities(caps)
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		for _, g := range psc.SupplementalGroups {
			s.SupplementalGroups = append(s.SupplementalGroups, uint32(g))
		}
		if psc.FSGroup != nil {
			s.SupplementalGroups = append(s.SupplementalGroups, uint32(*psc.FSGroup))
		}
	}
	return s
}

func adjustCapabilities(caps *corev1.Capabilities) []string {
	norm := func(c corev1.Capability) string {
		s := strings.ToUpper(string(c))
		if !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		return s
	}
	set := map[string]bool{}
	for _, c := range runtime.DefaultCapabilities {
		set[c] = true
	}
	for _, d := range caps.Drop {
		if strings.EqualFold(string(d), "ALL") {
			clear(set)
			continue
		}
		delete(set, norm(d))
	}
	for _, a := range caps.Add {
		set[norm(a)] = true
	}
	out := []string{}
	for c := range set {
		out = append(out, c)
	}
	return out
}

// containerLogDir is where a container's logs live, as the kubelet's
// /var/log/pods/<ns>_<name>_<uid>/<container>/.
func containerLogDir(dataDir, ns, name string, uid types.UID, container string) string {
	return filepath.Join(logsDir(dataDir), fmt.Sprintf("%s_%s_%s", ns, name, uid), container)
}
