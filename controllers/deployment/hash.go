package deployment

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"

	"github.com/davecgh/go-spew/spew"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/rand"
)

// ComputeHash is the pod-template-hash of a template, computed as Kubernetes computes it
// (fnv32a over a deterministic dump, salted with collisionCount), so a Deployment moved
// between clusters names its ReplicaSets the same way.
func ComputeHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	printer := spew.ConfigState{Indent: " ", SortKeys: true, DisableMethods: true, SpewKeys: true}
	printer.Fprintf(h, "%#v", *template)
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		h.Write(b)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// EqualIgnoreHash compares two pod templates, ignoring the pod-template-hash label.
func EqualIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	for _, t := range []*corev1.PodTemplateSpec{a, b} {
		if t.Labels != nil {
			t.Labels = maps.Clone(t.Labels)
			delete(t.Labels, DefaultDeploymentUniqueLabelKey)
		}
		if len(t.Labels) == 0 {
			t.Labels = nil
		}
	}
	return apiequality.Semantic.DeepEqual(a, b)
}
