package apiserver_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

// TestDevCluster keeps a three-node control plane running for manual kubectl sessions:
// SKIFF_DEV=<minutes> go test ./apiserver -run TestDevCluster -v
func TestDevCluster(t *testing.T) {
	mins := os.Getenv("SKIFF_DEV")
	if mins == "" {
		t.Skip("set SKIFF_DEV=<minutes> to run")
	}
	c := apitest.Start(t, 3, apitest.Options{})
	for i := range c.URLs {
		fmt.Printf("KUBECONFIG=%s\n", c.Kubeconfig(i))
	}
	d, _ := time.ParseDuration(mins + "m")
	time.Sleep(d)
}
