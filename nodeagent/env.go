package nodeagent

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// containerEnv resolves a container's environment in Kubernetes' order:
// envFrom sources first, then env entries (later ones win), with $(VAR)
// references expanded against what came before. configMap and secret keys
// are read from the API when the container starts.
func (a *Agent) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podIP string) ([]envVar, error) {
	var out []envVar
	index := map[string]int{}
	set := func(k, v string) {
		if i, ok := index[k]; ok {
			out[i].value = v
			return
		}
		index[k] = len(out)
		out = append(out, envVar{k, v})
	}
	// Service variables come first: envFrom and env override them, and
	// $(VAR) may refer to them, as with the kubelet.
	svcEnv, err := a.serviceEnv(ctx, pod)
	if err != nil {
		return nil, err
	}
	for _, e := range svcEnv {
		set(e.name, e.value)
	}
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, err := a.cfg.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && ptrTrue(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("configmap %q: %w", from.ConfigMapRef.Name, err)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, err := a.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && ptrTrue(from.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("secret %q: %w", from.SecretRef.Name, err)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		for k, v := range data {
			set(from.Prefix+k, v)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, out))
			continue
		}
		v, ok, err := a.envValueFrom(ctx, pod, c, e.ValueFrom, podIP)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	return out, nil
}

type envVar struct{ name, value string }

func (a *Agent) envValueFrom(ctx context.Context, pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource, podIP string) (string, bool, error) {
	switch {
	case src.FieldRef != nil:
		v, err := podField(pod, src.FieldRef.FieldPath, podIP, a.nodeIP().String())
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		ctr := c
		if src.ResourceFieldRef.ContainerName != "" {
			if ctr = findContainer(pod, src.ResourceFieldRef.ContainerName); ctr == nil {
				return "", false, fmt.Errorf("no container %q", src.ResourceFieldRef.ContainerName)
			}
		}
		v, err := a.resourceField(ctr, src.ResourceFieldRef)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := a.cfg.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && ptrTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !ptrTrue(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, ok, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := a.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && ptrTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok && !ptrTrue(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), ok, nil
	}
	return "", false, nil
}

// podField answers the downward API's fieldRef paths.
func podField(pod *corev1.Pod, path, podIP, hostIP string) (string, error) {
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// formatMap renders labels or annotations as the downward API's files do:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%s", k, strconv.Quote(m[k]))
	}
	return b.String()
}

// resourceField is the downward API's resourceFieldRef: a container's
// requests or limits, in units of the divisor (default 1), rounded up;
// unset limits report the node's allocatable, as in Kubernetes.
func (a *Agent) resourceField(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q resource.Quantity
	var ok bool
	switch ref.Resource {
	case "limits.cpu":
		q, ok = c.Resources.Limits[corev1.ResourceCPU]
	case "limits.memory":
		q, ok = c.Resources.Limits[corev1.ResourceMemory]
	case "limits.ephemeral-storage":
		q, ok = c.Resources.Limits[corev1.ResourceEphemeralStorage]
	case "requests.cpu":
		q, ok = c.Resources.Requests[corev1.ResourceCPU]
	case "requests.memory":
		q, ok = c.Resources.Requests[corev1.ResourceMemory]
	case "requests.ephemeral-storage":
		q, ok = c.Resources.Requests[corev1.ResourceEphemeralStorage]
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	if !ok && strings.HasPrefix(ref.Resource, "limits.") {
		if capacity, err := a.capacity(); err == nil {
			q = capacity[corev1.ResourceName(strings.TrimPrefix(ref.Resource, "limits."))]
		}
	}
	if strings.HasSuffix(ref.Resource, ".cpu") {
		m := (q.MilliValue() + divisor.MilliValue() - 1) / max(divisor.MilliValue(), 1)
		if ref.Resource == "requests.cpu" && q.IsZero() {
			m = 0
		}
		return strconv.FormatInt(max(m, 0), 10), nil
	}
	d := max(divisor.Value(), 1)
	return strconv.FormatInt((q.Value()+d-1)/d, 10), nil
}

// expand replaces $(VAR) with earlier variables' values, leaving unknown
// references as they are and turning $$ into $, as Kubernetes does.
func expand(s string, env []envVar) string {
	if !strings.Contains(s, "$") {
		return s
	}
	lookup := map[string]string{}
	for _, e := range env {
		lookup[e.name] = e.value
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func expandAll(args []string, env []envVar) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, env)
	}
	return out
}

// mergeEnv puts the container's variables over the image's.
func mergeEnv(image []string, env []envVar) []string {
	out := append([]string(nil), image...)
	for _, e := range env {
		replaced := false
		for i, kv := range out {
			if k, _, _ := strings.Cut(kv, "="); k == e.name {
				out[i] = e.name + "=" + e.value
				replaced = true
			}
		}
		if !replaced {
			out = append(out, e.name+"="+e.value)
		}
	}
	return out
}

func ptrTrue(b *bool) bool { return b != nil && *b }
