package garbagecollector

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestDecideDependent(t *testing.T) {
	refs := func(uids ...string) []metav1.OwnerReference {
		var out []metav1.OwnerReference
		for _, u := range uids {
			out = append(out, metav1.OwnerReference{UID: types.UID(u)})
		}
		return out
	}
	tests := []struct {
		name  string
		refs  []metav1.OwnerReference
		state map[types.UID]OwnerState
		want  Action
	}{
		{"no owners", nil, nil, Keep},
		{"owner present", refs("a"), map[types.UID]OwnerState{"a": OwnerPresent}, Keep},
		{"owner gone", refs("a"), map[types.UID]OwnerState{"a": OwnerAbsent}, DeleteBackground},
		{"one of two gone", refs("a", "b"), map[types.UID]OwnerState{"a": OwnerAbsent, "b": OwnerPresent}, RemoveDanglingRef},
		{"owner deleting in foreground", refs("a"), map[types.UID]OwnerState{"a": OwnerDeletingForeground}, DeleteForeground},
		{"foreground owner and a live one", refs("a", "b"), map[types.UID]OwnerState{"a": OwnerDeletingForeground, "b": OwnerPresent}, Keep},
	}
	for _, tt := range tests {
		if got := DecideDependent(tt.refs, tt.state); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := RemainingRefs(refs("a", "b"), map[types.UID]OwnerState{"a": OwnerAbsent}); len(got) != 1 || got[0].UID != "b" {
		t.Errorf("RemainingRefs = %v", got)
	}
}
