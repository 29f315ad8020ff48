package bench

import (
	"io"
	"os"
	"path/filepath"

	"github.com/skiff-dev/skiff/cluster"
)

// clusterDir makes a temporary directory under parent (the system's when empty) for a
// benchmark's local cluster and returns the cluster's directory in it, and the cleanup to
// defer at once: skiff down --purge on every path out, cancellation included (the servers
// and agents are detached processes that would otherwise outlive the benchmark), then the
// directory's removal.
func clusterDir(parent, prefix string, say func(format string, a ...any)) (string, func(), error) {
	root, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(root, "cluster")
	return dir, func() {
		if err := cluster.Down(dir, true, io.Discard); err != nil {
			say("cluster down: %v", err)
		}
		os.RemoveAll(root)
	}, nil
}
