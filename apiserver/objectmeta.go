package apiserver

import (
	"reflect"
	"time"

	"github.com/google/uuid"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

// specOf and statusOf reach an object's Spec and Status fields by reflection, so the
// status split and generation tracking need no per-kind code. Invalid when absent.
func specOf(obj runtime.Object) reflect.Value   { return fieldOf(obj, "Spec") }
func statusOf(obj runtime.Object) reflect.Value { return fieldOf(obj, "Status") }

func fieldOf(obj runtime.Object, name string) reflect.Value {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return v.Elem().FieldByName(name)
}

// copyField sets dst's field to a deep copy of src's.
func copyField(dst, src runtime.Object, name string) {
	d, s := fieldOf(dst, name), fieldOf(src, name)
	if !d.IsValid() || !s.IsValid() || !d.CanSet() {
		return
	}
	// The field's own generated DeepCopy keeps the two objects independent without
	// copying the rest of src (a pod's whole status and managedFields for its spec).
	if m := s.Addr().MethodByName("DeepCopy"); m.IsValid() && m.Type().NumIn() == 0 && m.Type().NumOut() == 1 && m.Type().Out(0) == s.Addr().Type() {
		d.Set(m.Call(nil)[0].Elem())
		return
	}
	d.Set(fieldOf(src.DeepCopyObject(), name))
}

func resetField(obj runtime.Object, name string) {
	if f := fieldOf(obj, name); f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}

// prepareCreate sets the server-owned metadata of a new object.
func (s *Server) prepareCreate(rs *Resource, obj runtime.Object, now time.Time) {
	m, _ := meta.Accessor(obj)
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + utilrand.String(5))
	}
	m.SetUID(types.UID(uuid.NewString()))
	m.SetCreationTimestamp(metav1.NewTime(now.Truncate(time.Second)))
	m.SetResourceVersion("")
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	if specOf(obj).IsValid() {
		m.SetGeneration(1)
	} else {
		m.SetGeneration(0)
	}
	if rs.Status && rs.ResetStatusOnCreate {
		resetField(obj, "Status")
	}
	if !rs.Namespaced {
		m.SetNamespace("")
	}
}

// prepareUpdate keeps what a client may not change and applies the status split: the main
// resource keeps the old status, /status keeps the old spec. generation goes up when the
// spec changed.
func prepareUpdate(rs *Resource, sub string, obj, old runtime.Object) {
	m, _ := meta.Accessor(obj)
	om, _ := meta.Accessor(old)
	// An update may leave uid out; one that names another uid fails validation (immutable),
	// which is how the kubelet's status patches make sure they reach the pod they meant.
	if m.GetUID() == "" {
		m.SetUID(om.GetUID())
	}
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	m.SetGeneration(om.GetGeneration())
	m.SetSelfLink("")
	if !rs.Namespaced {
		m.SetNamespace("")
	}
	if rs.Status {
		switch sub {
		case "":
			copyField(obj, old, "Status")
		case "status":
			copyField(obj, old, "Spec")
			// /status changes status only (plus, as kube allows, labels and annotations
			// are kept as sent); ownerReferences and finalizers stay.
			m.SetOwnerReferences(om.GetOwnerReferences())
			m.SetFinalizers(om.GetFinalizers())
		}
	}
	if sp, osp := specOf(obj), specOf(old); sp.IsValid() && osp.IsValid() {
		if !apiequality.Semantic.DeepEqual(sp.Interface(), osp.Interface()) {
			m.SetGeneration(om.GetGeneration() + 1)
		}
	}
}
