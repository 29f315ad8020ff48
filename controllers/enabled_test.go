package controllers

import (
	"slices"
	"testing"

	"github.com/skiff-dev/skiff/controllers/framework"
)

func TestResolveEnabled(t *testing.T) {
	plugins := []framework.Plugin{{Name: "a"}, {Name: "b"}, {Name: "c", DisabledByDefault: true}}
	tests := []struct {
		list    []string
		want    []string
		wantErr bool
	}{
		{list: nil, want: []string{"a", "b"}},
		{list: []string{"*"}, want: []string{"a", "b"}},
		{list: []string{"*", "-a"}, want: []string{"b"}},
		{list: []string{"*", "c"}, want: []string{"a", "b", "c"}},
		{list: []string{"a"}, want: []string{"a"}},
		{list: []string{"-a", "a"}, want: nil}, // an explicit disable wins
		{list: []string{"*", "nope"}, wantErr: true},
		{list: []string{"-nope"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := resolveEnabled(plugins, tt.list)
		if (err != nil) != tt.wantErr {
			t.Fatalf("%v: err = %v", tt.list, err)
		}
		if !slices.Equal(names(got), tt.want) {
			t.Errorf("%v: enabled %v, want %v", tt.list, names(got), tt.want)
		}
	}
}
