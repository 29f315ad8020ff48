// Package discover lists the resources the apiserver serves, for the controllers that work
// over every resource (garbage collector, namespace deletion).
package discover

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// Resource is one served resource.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Namespaced bool
	Verbs      []string
}

// Has reports whether the resource supports verb.
func (r Resource) Has(verb string) bool { return slices.Contains(r.Verbs, verb) }

// Resources returns the preferred version of every top-level resource. A group that fails
// discovery is left out; an error is returned only when nothing could be read.
func Resources(d discovery.DiscoveryInterface) ([]Resource, error) {
	lists, err := d.ServerPreferredResources()
	if len(lists) == 0 && err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var out []Resource
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			out = append(out, Resource{GVR: gv.WithResource(r.Name), Kind: r.Kind, Namespaced: r.Namespaced, Verbs: r.Verbs})
		}
	}
	return out, nil
}

// GVK of a resource, for matching ownerReferences.
func (r Resource) GVK() schema.GroupVersionKind { return r.GVR.GroupVersion().WithKind(r.Kind) }

// FromOwnerRef is the GroupKind an owner reference names.
func FromOwnerRef(ref metav1.OwnerReference) schema.GroupKind {
	gv, _ := schema.ParseGroupVersion(ref.APIVersion)
	return schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
}
