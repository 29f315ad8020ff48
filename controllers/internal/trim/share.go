package trim

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// maxShared bounds the table of shared parts; when it fills it is emptied and refilled
// (parts already handed out stay with the pods that hold them). Parts that are mostly one
// pod's own (annotations) are not offered: they would only churn it.
const maxShared = 4096

// sharer hands out one copy of each distinct part that many pods have in equal measure: a
// Deployment's pods differ in names, node and status, but not in their labels, owner,
// resource lists, tolerations or service account volume's sources; and pods started in the
// same second have equal conditions (their times have a second's resolution). A leader's informer held
// 30,000 such pods, each with its own copy of every part (a resource list alone is a map
// of about 600 bytes). Informer objects are read-only, by client-go's contract: a controller
// that changes one works on a DeepCopy, which copies the shared parts too.
type sharer struct {
	mu   sync.Mutex
	seen map[string]any
}

var parts = &sharer{seen: map[string]any{}}

// share returns the part first seen under key, or v when there is none.
func (s *sharer) share(key string, v any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if have, ok := s.seen[key]; ok {
		return have
	}
	if len(s.seen) >= maxShared {
		clear(s.seen)
	}
	s.seen[key] = v
	return v
}

// key builds an unambiguous key from a kind and fields (each length-prefixed).
type key struct{ b strings.Builder }

func newKey(kind string) *key {
	k := &key{}
	k.b.WriteString(kind)
	return k
}

func (k *key) add(s string) *key {
	k.b.WriteByte(0)
	k.b.WriteString(strconv.Itoa(len(s)))
	k.b.WriteByte(':')
	k.b.WriteString(s)
	return k
}

func (k *key) String() string { return k.b.String() }

func shareStrings(kind string, m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	k := newKey(kind)
	for _, name := range slices.Sorted(maps.Keys(m)) {
		k.add(name).add(m[name])
	}
	return parts.share(k.String(), m).(map[string]string)
}

func shareResources(m corev1.ResourceList) corev1.ResourceList {
	if len(m) == 0 {
		return m
	}
	k := newKey("resources")
	for _, name := range slices.Sorted(maps.Keys(m)) {
		q := m[name]
		k.add(string(name)).add(q.String())
	}
	return parts.share(k.String(), m).(corev1.ResourceList)
}

// marshaler is what the generated protobuf code gives every API type.
type marshaler interface{ Marshal() ([]byte, error) }

// sharePart shares a part by its protobuf encoding (which fixes map order).
func sharePart[T any, P interface {
	*T
	marshaler
}](kind string, p P) P {
	if p == nil {
		return nil
	}
	b, err := p.Marshal()
	if err != nil {
		return p
	}
	return parts.share(kind+"\x00"+string(b), p).(P)
}

// shareList shares a slice by its elements' protobuf encodings. Clipped: an append to a
// shared slice (by code that broke the read-only contract) must copy rather than write
// into another pod's array.
func shareList[E any, P interface {
	*E
	marshaler
}](kind string, list []E) []E {
	if len(list) == 0 {
		return list
	}
	k := newKey(kind)
	for i := range list {
		b, err := P(&list[i]).Marshal()
		if err != nil {
			return list
		}
		k.add(string(b))
	}
	return parts.share(k.String(), slices.Clip(list)).([]E)
}

// sharePod replaces the parts of pod that equal another pod's by that pod's.
func sharePod(pod *corev1.Pod) {
	pod.Labels = shareStrings("labels", pod.Labels)
	pod.OwnerReferences = shareList("owners", pod.OwnerReferences)
	pod.Spec.NodeSelector = shareStrings("nodeSelector", pod.Spec.NodeSelector)
	pod.Spec.Tolerations = shareList("tolerations", pod.Spec.Tolerations)
	pod.Spec.Affinity = sharePart("affinity", pod.Spec.Affinity)
	pod.Spec.SecurityContext = sharePart("podSecurityContext", pod.Spec.SecurityContext)
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			c.Resources.Requests = shareResources(c.Resources.Requests)
			c.Resources.Limits = shareResources(c.Resources.Limits)
			c.SecurityContext = sharePart("securityContext", c.SecurityContext)
		}
	}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		v.Projected = sharePart("projected", v.Projected)
	}
	pod.Status.Conditions = shareList("conditions", pod.Status.Conditions)
}
