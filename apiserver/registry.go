package apiserver

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one registration: everything the generic handlers need to serve a kind.
// Adding a resource is adding one of these to builtinResources.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Namespaced bool
	ShortNames []string
	Categories []string
	// Status: the resource has a /status subresource; the main resource ignores status
	// changes and /status ignores everything but status (the "status split").
	Status bool
	// Scale, when set, serves /scale as autoscaling/v1 Scale.
	Scale *ScaleSpec
	// Subresources served by other code (binding, log, exec...), listed in discovery.
	Extra []SubresourceInfo
	// ResetStatusOnCreate clears status on create (most kinds; not nodes).
	ResetStatusOnCreate bool
	// Default fills in defaults (k8s.io/api's defaults that users rely on). May be nil.
	Default func(obj runtime.Object)
	// Validate checks an object (old is nil on create). May be nil.
	Validate func(obj, old runtime.Object) field.ErrorList
	// Fields adds selectable fields beyond metadata.name and metadata.namespace.
	Fields func(obj runtime.Object) fields.Set
	// Columns and Row make the server-side table; nil gives NAME and AGE.
	Columns []metav1.TableColumnDefinition
	Row     func(obj runtime.Object, now time.Time) []any
	// Graceful says how long a delete waits (pods); nil deletes at once.
	Graceful func(obj runtime.Object, opts *metav1.DeleteOptions) (int64, bool)
	// Claims, when set, keeps values that must be unique across the resource (a Service's
	// cluster IP and node ports) as claims written with the object.
	Claims Claimer
	// Verbs overrides the default verbs (all of them).
	Verbs []string
	// Serve, when set, answers every request for the resource itself: nothing is stored
	// (access reviews, which are computed, not kept).
	Serve func(s *Server, w http.ResponseWriter, r *http.Request, q *request)
}

// ScaleSpec maps a kind's replicas to autoscaling/v1 Scale.
type ScaleSpec struct {
	Get func(obj runtime.Object) (spec, status int32, selector string)
	Set func(obj runtime.Object, replicas int32)
}

// SubresourceInfo names a subresource for discovery.
type SubresourceInfo struct {
	Name  string
	Kind  string // response kind, e.g. Binding, Pod
	Group string
	Verbs []string
}

var allVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func (r *Resource) verbs() []string {
	if r.Verbs != nil {
		return r.Verbs
	}
	return allVerbs
}

func (r *Resource) gvk() schema.GroupVersionKind { return r.GVR.GroupVersion().WithKind(r.Kind) }

func (r *Resource) singular() string { return strings.ToLower(r.Kind) }

func (r *Resource) groupResource() schema.GroupResource { return r.GVR.GroupResource() }

// registry holds the resources by group/version/resource. It is built once and never
// changes afterwards.
type registry struct {
	byGVR    map[schema.GroupVersionResource]*Resource
	byGVK    map[schema.GroupVersionKind]*Resource
	versions map[string][]string // group -> versions
	groups   []string            // "" first, then by name
}

func newRegistry(c *codecs, resources []*Resource) (*registry, error) {
	reg := &registry{
		byGVR:    map[schema.GroupVersionResource]*Resource{},
		byGVK:    map[schema.GroupVersionKind]*Resource{},
		versions: map[string][]string{},
	}
	for _, r := range resources {
		if _, dup := reg.byGVR[r.GVR]; dup {
			return nil, fmt.Errorf("apiserver: %s registered twice", r.GVR)
		}
		if !c.scheme.Recognizes(r.gvk()) {
			return nil, fmt.Errorf("apiserver: kind %s is not in the scheme", r.gvk())
		}
		reg.byGVR[r.GVR] = r
		reg.byGVK[r.gvk()] = r
		if len(reg.versions[r.GVR.Group]) == 0 {
			reg.groups = append(reg.groups, r.GVR.Group)
		}
		if !contains(reg.versions[r.GVR.Group], r.GVR.Version) {
			reg.versions[r.GVR.Group] = append(reg.versions[r.GVR.Group], r.GVR.Version)
		}
	}
	sort.SliceStable(reg.groups, func(i, j int) bool {
		if reg.groups[i] == "" || reg.groups[j] == "" {
			return reg.groups[i] == ""
		}
		return reg.groups[i] < reg.groups[j]
	})
	return reg, nil
}

func (reg *registry) lookup(group, version, resource string) *Resource {
	return reg.byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: resource}]
}

// inVersion returns the resources of one group-version in a stable order.
func (reg *registry) inVersion(group, version string) []*Resource {
	var out []*Resource
	for gvr, r := range reg.byGVR {
		if gvr.Group == group && gvr.Version == version {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GVR.Resource < out[j].GVR.Resource })
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
