package apiserver

import (
	"bytes"
	"reflect"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
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

// fieldManager is the field manager of a resource (sub: its subresource). forUpdate
// gives one for Update operations only (manageFields), whose type conversions leave the
// live object's managedFields out when that cannot change the result (trackingTypeConverter).
func (s *Server) fieldManager(rs *Resource, sub string, forUpdate bool) (*managedfields.FieldManager, error) {
	fm := &s.fms
	fm.once.Do(func() { fm.tc = applyconfigurations.NewTypeConverter(s.codecs.scheme) })
	fm.mu.Lock()
	defer fm.mu.Unlock()
	key := rs.GVR.String() + "/" + sub
	tc := fm.tc
	if forUpdate {
		key += "/update"
		tc = trackingTypeConverter{fm.tc}
	}
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
	f, err := managedfields.NewDefaultFieldManager(tc, runtime.UnsafeObjectConvertor(s.codecs.scheme), s.codecs.scheme, s.codecs.scheme, rs.gvk(), rs.GVR.GroupVersion(), sub, resetFilters(reset))
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
	f, err := s.fieldManager(q.rs, q.ri.Subresource, true)
	if err != nil {
		return obj
	}
	if live == nil {
		live = q.rs.newObject(s.codecs)
		return f.UpdateNoErrors(live, obj, manager)
	}
	// The half of the object the write cannot change (the spec of a status write, the
	// status of a main-resource write, as prepareUpdate left them) is left out of the
	// field manager's conversions and diff when it is identical in both, and put back: it
	// adds no difference, and the field manager's reset filter (resetFilters) drops that
	// half from what it records anyway.
	same := ""
	if q.rs.Status {
		switch q.ri.Subresource {
		case "status":
			same = "Spec"
		case "":
			same = "Status"
		}
	}
	lf, nf := fieldOf(live, same), fieldOf(obj, same)
	if same == "" || !lf.IsValid() || !nf.IsValid() || !reflect.DeepEqual(lf.Interface(), nf.Interface()) {
		return f.UpdateNoErrors(live, obj, manager)
	}
	lc, nc := withoutField(live, same), withoutField(obj, same)
	if lc == nil || nc == nil {
		return f.UpdateNoErrors(live, obj, manager)
	}
	out := f.UpdateNoErrors(lc, nc, manager)
	if of := fieldOf(out, same); of.IsValid() && of.CanSet() {
		of.Set(nf)
	}
	return out
}

// withoutField is a shallow copy of obj with the named field zero (nil if obj is not a
// pointer to a struct with that field).
func withoutField(obj runtime.Object, name string) runtime.Object {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	f := cp.Elem().FieldByName(name)
	if !f.IsValid() || !f.CanSet() {
		return nil
	}
	f.Set(reflect.Zero(f.Type()))
	out, _ := cp.Interface().(runtime.Object)
	return out
}

// trackingTypeConverter converts objects to typed values for the field manager's Update,
// without the object's own managedFields when no manager's field set mentions
// metadata.managedFields.
//
// The field manager (as in kube-apiserver) takes the managers' sets from the live object,
// removes managedFields from the new object, and diffs the two objects' typed values: the
// live managedFields, parsed from their FieldsV1 JSON, were a large part of every write's
// conversion and diff (most of a pod status patch's garbage), and all they contribute is
// "removed" paths under metadata.managedFields, which are taken out of every manager's
// set. A set that holds none of those paths (always, unless a client wrote such an entry
// itself) comes out the same without them. Apply keeps the plain converter.
type trackingTypeConverter struct{ managedfields.TypeConverter }

func (c trackingTypeConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	if m, err := meta.Accessor(obj); err == nil && len(m.GetManagedFields()) > 0 && !setsMentionManagedFields(m.GetManagedFields()) {
		obj = withoutManagedFields(obj)
	}
	return c.TypeConverter.ObjectToTyped(obj, opts...)
}

var managedFieldsKey = []byte(`"f:managedFields"`)

// setsMentionManagedFields tells whether any entry's field set could hold a path under
// metadata.managedFields (its FieldsV1 names the field), or is not FieldsV1 at all.
func setsMentionManagedFields(entries []metav1.ManagedFieldsEntry) bool {
	for _, e := range entries {
		if e.FieldsV1 == nil {
			continue
		}
		if e.FieldsType != "FieldsV1" || bytes.Contains(e.FieldsV1.Raw, managedFieldsKey) {
			return true
		}
	}
	return false
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
