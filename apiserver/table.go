package apiserver

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

var nameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace."}

func ageColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."}
}

// toTable is server-side printing for kubectl get: the registration's columns, and each
// row's object as PartialObjectMetadata (or the whole object, or none) as asked.
func (s *Server) toTable(rs *Resource, obj runtime.Object, include metav1.IncludeObjectPolicy, gv schema.GroupVersion) (*metav1.Table, error) {
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: gv.String()}}
	var items []runtime.Object
	if meta.IsListType(obj) {
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, err
		}
		lm, _ := meta.ListAccessor(obj)
		t.ResourceVersion, t.Continue, t.RemainingItemCount = lm.GetResourceVersion(), lm.GetContinue(), lm.GetRemainingItemCount()
	} else {
		items = []runtime.Object{obj}
		if m, err := meta.Accessor(obj); err == nil {
			t.ResourceVersion = m.GetResourceVersion()
		}
	}
	t.ColumnDefinitions = rs.Columns
	if t.ColumnDefinitions == nil {
		t.ColumnDefinitions = []metav1.TableColumnDefinition{nameColumn, {Name: "Created At", Type: "date", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."}}
	}
	now := s.cfg.Now()
	for _, it := range items {
		row := metav1.TableRow{}
		if rs.Row != nil {
			row.Cells = rs.Row(it, now)
		} else {
			m, _ := meta.Accessor(it)
			row.Cells = []any{m.GetName(), m.GetCreationTimestamp().UTC().Format(time.RFC3339)}
		}
		switch include {
		case metav1.IncludeNone:
		case metav1.IncludeObject:
			s.codecs.setKind(it)
			row.Object = runtime.RawExtension{Object: it}
		default:
			p, err := partialOf(it, gv)
			if err != nil {
				return nil, err
			}
			row.Object = runtime.RawExtension{Object: p}
		}
		t.Rows = append(t.Rows, row)
	}
	if t.Rows == nil {
		t.Rows = []metav1.TableRow{}
	}
	return t, nil
}

// age prints a creation time as kubectl does ("5m", "3d").
func age(m metav1.Object, now time.Time) string {
	ts := m.GetCreationTimestamp()
	if ts.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(ts.Time))
}
