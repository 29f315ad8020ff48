package apiserver_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/apiserver/apitest"
)

const kubectlBin = "/usr/bin/kubectl"

// kubectl runs the real kubectl against a kubeconfig and returns its combined output.
func kubectl(t *testing.T, kubeconfig string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kubectlBin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustKubectl(t *testing.T, kubeconfig, stdin string, want string, args ...string) string {
	t.Helper()
	out, err := kubectl(t, kubeconfig, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("kubectl %s: want %q in output:\n%s", strings.Join(args, " "), want, out)
	}
	return out
}

const demoDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
  namespace: team
spec:
  replicas: 2
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
      - name: app
        image: busybox:1.36
`

// TestKubectlEverydayWork drives the real kubectl v1.32 against a three-node control plane,
// writing through one node and reading through another.
func TestKubectlEverydayWork(t *testing.T) {
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skip("kubectl not installed")
	}
	c := apitest.Start(t, 3, apitest.Options{})
	kc0, kc1 := c.Kubeconfig(0), c.Kubeconfig(1)

	mustKubectl(t, kc0, "", "Server Version: v1.32", "version")
	mustKubectl(t, kc0, "", "namespace/team created", "create", "namespace", "team")
	mustKubectl(t, kc0, "", "deployment.apps/web created", "create", "deployment", "web", "--image=nginx:1.25", "--replicas=3", "-n", "team")
	mustKubectl(t, kc1, "", "No resources found", "get", "pods", "-A")
	out := mustKubectl(t, kc1, "", "web", "get", "deploy", "-A")
	if !strings.Contains(out, "team") || !strings.Contains(out, "0/3") {
		t.Fatalf("get deploy -A: want namespace and READY 0/3:\n%s", out)
	}
	mustKubectl(t, kc1, "", "image: nginx:1.25", "get", "deploy", "web", "-n", "team", "-o", "yaml")
	mustKubectl(t, kc1, "", "nginx:1.25", "get", "deploy", "-n", "team", "-o", "wide")

	// Client-side apply twice (the second is unchanged), then server-side apply.
	mustKubectl(t, kc0, demoDeployment, "deployment.apps/demo created", "apply", "-f", "-")
	mustKubectl(t, kc1, demoDeployment, "deployment.apps/demo unchanged", "apply", "-f", "-")
	mustKubectl(t, kc1, demoDeployment, "serverside-applied", "apply", "--server-side", "-f", "-")
	mustKubectl(t, kc0, "", "scaled", "scale", "deploy", "demo", "-n", "team", "--replicas=5")
	mustKubectl(t, kc1, "", "5 2", "get", "deploy", "demo", "-n", "team", "-o", "jsonpath={.spec.replicas} {.metadata.generation}")
	mustKubectl(t, kc0, "", "labeled", "label", "deploy", "demo", "-n", "team", "tier=web")
	mustKubectl(t, kc0, "", "patched", "patch", "deploy", "demo", "-n", "team", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"busybox:1.37"}]}}}}`)
	mustKubectl(t, kc1, "", "busybox:1.37", "get", "deploy", "-n", "team", "-l", "tier=web", "-o", "jsonpath={.items[0].spec.template.spec.containers[0].image}")
	mustKubectl(t, kc0, "", "configmap/cfg created", "create", "configmap", "cfg", "-n", "team", "--from-literal=k=v")
	mustKubectl(t, kc1, "", "cfg", "get", "cm", "-n", "team", "--show-labels")
	mustKubectl(t, kc1, "", "Number of desired pods", "explain", "deployment.spec.replicas")
	// Every group's OpenAPI document is served (one kind each, groups in discovery order).
	mustKubectl(t, kc1, "", "SubjectAccessReviewSpec", "explain", "subjectaccessreviews.spec")
	mustKubectl(t, kc1, "", "completions", "explain", "jobs.spec")
	mustKubectl(t, kc1, "", "holderIdentity", "explain", "leases.spec")
	mustKubectl(t, kc1, "", "addresses", "explain", "endpointslices.endpoints")
	mustKubectl(t, kc1, "", "PolicyRule", "explain", "roles.rules")
	mustKubectl(t, kc1, "", "deployments", "api-resources")

	// Validation errors come back as 422 with the field.
	bad := strings.ReplaceAll(demoDeployment, "name: demo\n", "name: Bad_Name\n")
	if out, err := kubectl(t, kc0, bad, "apply", "-f", "-"); err == nil || !strings.Contains(out, "Invalid value") {
		t.Fatalf("apply of an invalid name: want an Invalid error, got %v:\n%s", err, out)
	}

	mustKubectl(t, kc0, "", `deployment.apps "demo" deleted`, "delete", "deploy", "demo", "-n", "team")
	if out, err := kubectl(t, kc1, "", "get", "deploy", "demo", "-n", "team"); err == nil || !strings.Contains(out, "NotFound") {
		t.Fatalf("get after delete: want NotFound, got %v:\n%s", err, out)
	}
}
