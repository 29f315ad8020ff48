package apiserver

import (
	"testing"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// TestViewsAnswerSelectorsAsTheirFieldSets: a cached view picks exactly what a selector
// picks of the object's labels and field set, fields outside the resource's names
// included, and equal label sets of different objects are one map.
func TestViewsAnswerSelectorsAsTheirFieldSets(t *testing.T) {
	c := newSelectorCache(fields.Set{"spec.nodeName": "", "status.phase": ""})
	objs := []struct {
		labels map[string]string
		fields fields.Set
	}{
		{map[string]string{"app": "web", "tier": "a"}, fields.Set{"metadata.name": "p0", "spec.nodeName": "n1", "status.phase": "Running"}},
		{map[string]string{"tier": "a", "app": "web"}, fields.Set{"metadata.name": "p1", "spec.nodeName": "", "status.phase": "Pending"}},
		{map[string]string{"app": "db"}, fields.Set{"metadata.name": "p2", "spec.nodeName": "n2", "status.phase": "Running"}},
		{nil, fields.Set{"metadata.name": "p3", "status.phase": "Failed"}},
	}
	sels := []string{"", "spec.nodeName=n1", "spec.nodeName=", "status.phase!=Running", "metadata.name=p2", "metadata.name=p9,status.phase=Failed"}
	lsels := []string{"", "app=web", "tier", "app!=web"}
	views := make([]selectorView, len(objs))
	for i, o := range objs {
		views[i] = c.view(int64(i), o.labels, o.fields)
	}
	for _, fs := range sels {
		for _, ls := range lsels {
			sel := &selector{}
			var err error
			if sel.labels, err = labels.Parse(ls); err != nil {
				t.Fatal(err)
			}
			if sel.fields, err = fields.ParseSelector(fs); err != nil {
				t.Fatal(err)
			}
			for i, o := range objs {
				want := sel.picks(labels.Set(o.labels), o.fields)
				if got := sel.picks(views[i].labels, views[i].fields); got != want {
					t.Errorf("labels %q fields %q, object %d: view picks %v, its field set %v", ls, fs, i, got, want)
				}
			}
		}
	}
	if views[0].labels == nil {
		t.Fatal("no labels in the view")
	}
	views[0].labels["shared"] = "yes" // the one map both views hold
	if views[1].labels["shared"] != "yes" {
		t.Error("equal label sets are separate maps")
	}
}
