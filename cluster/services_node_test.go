package cluster_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

// TestNodeProxyAndDNSReachServiceBackendsAcrossNodes runs real agents in
// their own network namespaces: a Service (no selector, so the EndpointSlice
// is the test's own) over three serve pods on both nodes is reached by name
// from a client pod, through the agent's cluster DNS and nftables DNAT, and
// every backend answers; a pod reaches the API at kubernetes.default.svc
// with its service account, and lists pods with its token only once a
// RoleBinding allows it; a headless Service resolves to the pods; a name
// outside the cluster resolves through the node's resolvers; NodePort
// answers on every node's address, also while an agent is killed with -9
// and after it restarts; a Deployment behind kubectl expose follows
// readiness and scale (deploymentBehindExpose); the deleted Services leave
// no rule on any node.
func TestNodeProxyAndDNSReachServiceBackendsAcrossNodes(t *testing.T) {
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
	lc, err := cluster.Up(ctx, cluster.UpConfig{Dir: dir, Servers: 3, Agents: 2, Binary: skiffBin,
		Netns: true, Runtime: "libcontainer", TestImageBinary: testImageBin, Progress: &log})
	t.Cleanup(func() { _ = cluster.Down(dir, true, os.Stderr) })
	if err != nil {
		t.Fatalf("up: %v\n%s%s", err, log.String(), serverLogs(lc))
	}
	ctxName := lc.Processes[0].Name
	t.Cleanup(func() { servicesDiagnostics(t, lc, ctxName) }) // before Down
	apply := func(name, yaml string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		mustKubectl(t, lc, ctxName, "apply", "-f", f)
	}
	backends := map[string]string{"be-1": "agent-1", "be-2": "agent-1", "be-3": "agent-2"}
	for name, node := range backends {
		apply(name, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, labels: {app: be}}
spec:
  nodeName: %s
  containers:
  - {name: serve, image: skiff.local/testimage:latest, args: [serve, --port, "8080"]}
`, name, node))
	}
	ips := map[string]string{}
	eventually(t, 40*time.Second, func() error {
		for name := range backends {
			out, err := kubectl(t, lc, ctxName, "get", "pod", name, "-o", "jsonpath={.status.phase} {.status.podIP}")
			f := strings.Fields(out)
			if err != nil || len(f) != 2 || f[0] != "Running" {
				return fmt.Errorf("pod %s: %q %v", name, out, err)
			}
			ips[name] = f[1]
		}
		return nil
	})
	var eps strings.Builder
	for _, name := range slices.Sorted(maps.Keys(backends)) {
		fmt.Fprintf(&eps, "- addresses: [%q]\n  conditions: {ready: true}\n  nodeName: %s\n", ips[name], backends[name])
	}
	apply("svc", `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.77.77
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-hand, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
`+eps.String())

	// clientPod runs a testimage command to completion on a node, as the
	// service account sa ("" for default), and returns its phase and logs.
	attempt := 0
	clientPod := func(node, sa string, args ...string) (phase, logs string) {
		t.Helper()
		attempt++
		name := fmt.Sprintf("client-%d", attempt)
		if sa == "" {
			sa = "default"
		}
		apply(name, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  nodeName: %s
  serviceAccountName: %s
  restartPolicy: Never
  containers:
  - {name: c, image: skiff.local/testimage:latest, args: [%s]}
`, name, node, sa, strings.Join(args, ", ")))
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) {
			phase, _ = kubectl(t, lc, ctxName, "get", "pod", name, "-o", "jsonpath={.status.phase}")
			if phase == "Succeeded" || phase == "Failed" {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		logs, _ = kubectl(t, lc, ctxName, "logs", name)
		return phase, logs
	}
	// runPod runs a client pod again until it succeeds and check accepts its
	// output (rules and DNS may be a moment behind).
	runPod := func(node string, check func(logs string) error, args ...string) {
		t.Helper()
		eventually(t, 60*time.Second, func() error {
			phase, logs := clientPod(node, "", args...)
			if phase != "Succeeded" {
				return fmt.Errorf("client %v: %s\n%s", args, phase, logs)
			}
			return check(logs)
		})
	}
	allBackends := func(logs string) error {
		for be := range backends {
			if !strings.Contains(logs, be) {
				return fmt.Errorf("backend %s never answered:\n%s", be, logs)
			}
		}
		return nil
	}
	// The client pod on agent-2 reaches http://web by its short name.
	runPod("agent-2", allBackends, "get", "--count", `"30"`, "http://web/hostname")

	// The API through the kubernetes Service, by name, with the pod's
	// service account token and CA (discovery is open to every account).
	runPod("agent-1", func(logs string) error {
		if !strings.Contains(logs, `"APIVersions"`) {
			return fmt.Errorf("GET /api: %s", logs)
		}
		return nil
	}, "get", "--sa", "https://kubernetes.default.svc/api")

	// A headless Service resolves to its endpoints' addresses.
	apply("headless", `apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-headless-hand, labels: {kubernetes.io/service-name: web-headless}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
`+eps.String())
	runPod("agent-1", func(logs string) error {
		for _, ip := range ips {
			if !strings.Contains(logs, ip+"\n") {
				return fmt.Errorf("resolve web-headless: %q lacks %s", logs, ip)
			}
		}
		return nil
	}, "resolve", "web-headless")

	// A name outside the cluster is forwarded to the node's resolvers (the
	// host's, reached through the namespaces' masquerade), where the host
	// resolves it at all.
	const outside = "proxy.golang.org"
	if _, err := net.LookupHost(outside); err != nil {
		t.Logf("not checking DNS forwarding: this host does not resolve %s: %v", outside, err)
	} else {
		runPod("agent-2", func(logs string) error {
			for _, l := range strings.Fields(logs) {
				if net.ParseIP(l) == nil {
					return fmt.Errorf("resolve %s: %q", outside, logs)
				}
			}
			return nil
		}, "resolve", outside)
	}

	// NodePort answers on every node's address, from outside the pods.
	mustKubectl(t, lc, ctxName, "patch", "service", "web", "-p",
		`{"spec":{"type":"NodePort","ports":[{"name":"http","port":80,"targetPort":8080,"nodePort":30777}]}}`)
	nodePortAnswers := func() {
		t.Helper()
		for _, p := range lc.Processes {
			if p.Role != "agent" {
				continue
			}
			eventually(t, 20*time.Second, func() error {
				return httpGetOK("http://" + p.IP + ":30777/hostname")
			})
		}
	}
	nodePortAnswers()

	// The agent killed with -9: the kernel keeps its rules; restarted, it
	// replaces its table and the Service still answers.
	a2 := process(lc, "agent-2")
	if err := syscall.Kill(a2.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nodePortAnswers()
	if err := cluster.StartProcess(lc, a2); err != nil {
		t.Fatal(err)
	}
	if err := saveCluster(lc); err != nil {
		t.Fatal(err)
	}
	runPod("agent-2", allBackends, "get", "--count", `"30"`, "http://web.default.svc.cluster.local/hostname")
	nodePortAnswers()

	// A pod lists pods through the kubernetes Service with its service
	// account's token: forbidden (403) until a RoleBinding allows it.
	mustKubectl(t, lc, ctxName, "create", "serviceaccount", "lister")
	mustKubectl(t, lc, ctxName, "create", "role", "pod-reader", "--verb=list", "--resource=pods")
	listPods := []string{"get", "--sa", "https://kubernetes.default.svc/api/v1/namespaces/default/pods"}
	eventually(t, 60*time.Second, func() error {
		phase, logs := clientPod("agent-1", "lister", listPods...)
		if phase != "Failed" || !strings.Contains(logs, "403") {
			return fmt.Errorf("list pods without a RoleBinding: %s, want Failed with 403:\n%s", phase, logs)
		}
		return nil
	})
	mustKubectl(t, lc, ctxName, "create", "rolebinding", "lister-pods", "--role=pod-reader", "--serviceaccount=default:lister")
	eventually(t, 60*time.Second, func() error {
		phase, logs := clientPod("agent-2", "lister", listPods...)
		if phase != "Succeeded" || !strings.Contains(logs, `"PodList"`) {
			return fmt.Errorf("list pods with a RoleBinding: %s\n%s", phase, logs)
		}
		return nil
	})

	deploymentBehindExpose(t, lc, ctxName, apply, runPod)

	mustKubectl(t, lc, ctxName, "delete", "service", "web")
	mustKubectl(t, lc, ctxName, "delete", "endpointslice", "web-hand")
	mustKubectl(t, lc, ctxName, "delete", "service", "web-headless")
	mustKubectl(t, lc, ctxName, "delete", "service", "web2")
	for _, p := range lc.Processes {
		if p.Role != "agent" {
			continue
		}
		eventually(t, 10*time.Second, func() error {
			out, err := exec.Command("ip", "netns", "exec", p.Netns, "nft", "list", "table", "ip", "skiff-proxy").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: nft list table: %v\n%s", p.Name, err, out)
			}
			if strings.Contains(string(out), "10.96.77.77") || strings.Contains(string(out), "default/web/") ||
				strings.Contains(string(out), "default/web2/") || strings.Contains(string(out), "30777") {
				return fmt.Errorf("%s keeps rules of the deleted Service:\n%s", p.Name, out)
			}
			return nil
		})
	}
}

func httpGetOK(url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "be-") {
		return fmt.Errorf("GET %s: %s %q", url, resp.Status, body)
	}
	return nil
}
