package image_test

import (
	"slices"
	"testing"

	"github.com/skiff-dev/skiff/nodeagent/image"
)

func TestArgvFollowsKubernetesRules(t *testing.T) {
	c := image.Config{Entrypoint: []string{"/ep"}, Cmd: []string{"cmd"}}
	for _, tc := range []struct {
		command, args, want []string
	}{
		{nil, nil, []string{"/ep", "cmd"}},
		{[]string{"/bin/x"}, nil, []string{"/bin/x"}},
		{nil, []string{"a"}, []string{"/ep", "a"}},
		{[]string{"/bin/x"}, []string{"a"}, []string{"/bin/x", "a"}},
	} {
		if got := c.Argv(tc.command, tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("Argv(%v, %v) = %v, want %v", tc.command, tc.args, got, tc.want)
		}
	}
}

func TestIDsParsesNumericUser(t *testing.T) {
	for user, want := range map[string][2]uint32{"": {0, 0}, "1000": {1000, 0}, "1000:2000": {1000, 2000}} {
		uid, gid, err := image.Config{User: user}.IDs()
		if err != nil || uid != want[0] || gid != want[1] {
			t.Errorf("%q: %d:%d, %v", user, uid, gid, err)
		}
	}
	for _, bad := range []string{"nobody", "1000:staff", "-1"} {
		if _, _, err := (image.Config{User: bad}).IDs(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
