package main

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// libcontainer re-executes this binary as "<exe> init"; a subcommand with that name (or
// alias) would be shadowed by the container init, or worse, shadow it.
func TestNoCommandIsNamedLikeContainerInit(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() == runtime.InitArg || sub.HasAlias(runtime.InitArg) {
				t.Errorf("command %q is named %q", sub.CommandPath(), runtime.InitArg)
			}
			walk(sub)
		}
	}
	walk(newRootCmd())
}

func TestParsePeers(t *testing.T) {
	got, err := parsePeers("n1=127.0.0.1:1, n2=127.0.0.1:2,")
	if err != nil || len(got) != 2 || got[1].ID != "n2" || got[1].Address != "127.0.0.1:2" || !got[1].Voter {
		t.Fatalf("parsePeers: %+v, %v", got, err)
	}
	for _, bad := range []string{"n1", "=127.0.0.1:1", "n1="} {
		if _, err := parsePeers(bad); err == nil {
			t.Errorf("parsePeers(%q) accepted", bad)
		}
	}
}
