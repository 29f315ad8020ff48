package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

// TestLoopbackClusterPodReachesAPIThroughKubernetesService is make run's
// cluster (no network namespaces, everything on loopback): the kubernetes
// Service's endpoints are the servers' 127.0.0.1 addresses, and a pod
// reaches the API through https://kubernetes.default.svc all the same
// (the agent sets route_localnet on its pod bridge).
func TestLoopbackClusterPodReachesAPIThroughKubernetesService(t *testing.T) {
	needsRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft is missing (apt-get install nftables), and CI must run this test")
		}
		t.Skip("needs nft (Debian package nftables)")
	}
	dir := filepath.Join(t.TempDir(), "c")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log strings.Builder
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 1, Agents: 1, Binary: skiffBin,
		Runtime: "libcontainer", TestImageBinary: testImageBin, Progress: &log})
	t.Cleanup(func() { _ = cluster.Down(dir, true, os.Stderr) })
	if err != nil {
		t.Fatalf("up: %v\n%s%s", err, log.String(), serverLogs(lc))
	}
	ctxName := lc.Processes[0].Name
	eventually(t, 30*time.Second, func() error {
		eps, err := kubectl(t, lc, ctxName, "get", "endpointslices", "-l", "kubernetes.io/service-name=kubernetes",
			"-o", "jsonpath={.items[*].endpoints[*].addresses[0]}")
		if err != nil || !strings.HasPrefix(eps, "127.") {
			return fmt.Errorf("kubernetes Service endpoints %q (%v), want loopback addresses", eps, err)
		}
		return nil
	})
	attempt := 0
	eventually(t, 90*time.Second, func() error {
		attempt++
		name := fmt.Sprintf("api-client-%d", attempt)
		mustKubectl(t, lc, ctxName, "run", name, "--image=skiff.local/testimage:latest", "--restart=Never",
			"--", "get", "--sa", "https://kubernetes.default.svc/api")
		var phase string
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) && phase != "Succeeded" && phase != "Failed" {
			time.Sleep(250 * time.Millisecond)
			phase, _ = kubectl(t, lc, ctxName, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		}
		logs, _ := kubectl(t, lc, ctxName, "logs", name)
		if phase != "Succeeded" || !strings.Contains(logs, `"APIVersions"`) {
			return fmt.Errorf("GET https://kubernetes.default.svc/api from a pod: %s\n%s", phase, logs)
		}
		return nil
	})
}
