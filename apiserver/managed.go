package apiserver

import (
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// fieldManagers tracks managedFields and serves server-side apply with apimachinery's
// field manager over the structured-merge-diff schema that client-go ships for every
// built-in kind (applyconfigurations.NewTypeConverter), so no OpenAPI models are needed.
type fieldManagers struct {
	once sync.Once
	tc   managedfields.TypeConverter
	mu   sync.Mutex
	byRS map[string]*managedfields.FieldManager
}

func (s *Server) fieldManager(rs *Resource, sub string) (*managedfields.FieldManager, error) {
	fm := &s.fms
	fm.once.Do(func() { fm.tc = applyconfigurations.NewTypeConverter(s.codecs.scheme) })
	fm.mu.Lock()
	defer fm.mu.Unlock()
	key := rs.GVR.String() + "/" + sub
	if f, ok := fm.byRS[key]; ok {
		return f, nil
	}
	var reset map[fieldpath.APIVersion]*fieldpath.Set
	if rs.Status {
		gv := fieldpath.APIVersion(rs.GVR.GroupVersion().String())
		if sub == "status" {
			reset = map[fieldpath.APIVersion]*fieldpath.Set{gv: fieldpath.NewSet(fieldpath.MakePathOrDie("spec"))}
		} else {
			reset = map[fieldpath.APIVersion]*fieldpath.Set{gv: fieldpath.NewSet(fieldpath.MakePathOrDie("status"))}
		}
	}
	// The object convertor is the scheme's unsafe one, as kube-apiserver passes its
	// UnsafeConvertor: a typed object already at the resource's version is used as it is
	// (its kind set) instead of deep-copied, twice per write (the live and the new object),
	// only to be read.
	f, err := managedfields.NewDefaultFieldManager(fm.tc, runtime.UnsafeObjectConvertor(s.codecs.scheme), s.codecs.scheme, s.codecs.scheme, rs.gvk(), rs.GVR.GroupVersion(), sub, resetFilters(reset))
	if err != nil {
		return nil, err
	}
	if fm.byRS == nil {
		fm.byRS = map[string]*managedfields.FieldManager{}
	}
	fm.byRS[key] = f
	return f, nil
}

func resetFilters(sets map[fieldpath.APIVersion]*fieldpath.Set) map[fieldpath.APIVersion]fieldpath.Filter {
	if sets == nil {
		return nil
	}
	out := map[fieldpath.APIVersion]fieldpath.Filter{}
	for k, v := range sets {
		out[k] = fieldpath.NewExcludeSetFilter(v)
	}
	return out
}

// manageFields records the writer in managedFields (operation Update); a failure to track
// never fails the write, as in kube-apiserver.
func (s *Server) manageFields(q *request, live, obj runtime.Object, manager string) runtime.Object {
	f, err := s.fieldManager(q.rs, q.ri.Subresource)
	if err != nil {
		return obj
	}
	if live == nil {
		live = q.rs.newObject(s.codecs)
	}
	return f.UpdateNoErrors(live, obj, manager)
}

// managerFromUserAgent is kube-apiserver's default field manager: the user agent up to
// its first "/".
func managerFromUserAgent(ua string) string {
	if i := strings.Index(ua, "/"); i >= 0 {
		ua = ua[:i]
	}
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}
