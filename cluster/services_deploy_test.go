package cluster_test

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/skiff-dev/skiff/cluster"
)

// deploymentBehindExpose is the tutorial's path on a running netns cluster
// (TestNodeProxyAndDNSReachServiceBackendsAcrossNodes): a Deployment of
// three pods exposed with kubectl expose answers by short name from all
// three; a pod whose readiness fails leaves the EndpointSlice's ready
// endpoints and stops answering, and comes back when it passes again;
// scaled to one, only that one answers, within a few seconds in every
// node's kernel.
func deploymentBehindExpose(t *testing.T, lc *cluster.LocalCluster, ctxName string,
	apply func(name, yaml string), runPod func(node string, check func(logs string) error, args ...string)) {
	t.Helper()
	apply("web2", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web2}
spec:
  replicas: 3
  selector: {matchLabels: {app: web2}}
  template:
    metadata: {labels: {app: web2}}
    spec:
      containers:
      - name: serve
        image: skiff.local/testimage:latest
        args: [serve, --port, "8080"]
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
          periodSeconds: 1
          failureThreshold: 1
`)
	mustKubectl(t, lc, ctxName, "expose", "deployment", "web2", "--port=80", "--target-port=8080")
	type pod struct{ name, ip, node string }
	var pods []pod
	eventually(t, 90*time.Second, func() error {
		out, err := kubectl(t, lc, ctxName, "get", "pods", "-l", "app=web2", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		pods = nil
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) != 4 || f[3] != "True" {
				return fmt.Errorf("pods of web2 not all ready:\n%s", out)
			}
			pods = append(pods, pod{f[0], f[1], f[2]})
		}
		if len(pods) != 3 {
			return fmt.Errorf("%d pods of web2:\n%s", len(pods), out)
		}
		return nil
	})
	answers := func(want []string, not ...string) func(logs string) error {
		return func(logs string) error {
			for _, w := range want {
				if !strings.Contains(logs, w) {
					return fmt.Errorf("%s never answered:\n%s", w, logs)
				}
			}
			for _, n := range not {
				if strings.Contains(logs, n) {
					return fmt.Errorf("%s answered:\n%s", n, logs)
				}
			}
			return nil
		}
	}
	names := []string{pods[0].name, pods[1].name, pods[2].name}
	runPod("agent-2", answers(names), "get", "--count", `"30"`, "http://web2/hostname")

	// Readiness fails on one pod: it leaves the ready endpoints and the
	// rotation; passing again, it is back.
	sick := pods[0]
	readiness := func(path string) {
		t.Helper()
		ns := process(lc, sick.node).Netns
		eventually(t, 20*time.Second, func() error { return postInNetns(ns, sick.ip+":8080", path) })
	}
	sliceReady := func(ip, want string) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			out, err := kubectl(t, lc, ctxName, "get", "endpointslices", "-l", "kubernetes.io/service-name=web2", "-o",
				`jsonpath={range .items[*].endpoints[*]}{.addresses[0]}={.conditions.ready}{"\n"}{end}`)
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if !slices.Contains(strings.Fields(out), ip+"="+want) {
				return fmt.Errorf("EndpointSlices of web2 lack %s=%s:\n%s", ip, want, out)
			}
			return nil
		})
	}
	readiness("/readyz/fail")
	sliceReady(sick.ip, "false")
	runPod("agent-1", answers(names[1:], sick.name), "get", "--count", `"20"`, "http://web2/hostname")
	readiness("/readyz/ok")
	sliceReady(sick.ip, "true")

	// Scaled to one: within a few seconds every node's kernel balances
	// web2 over that one pod only, and only it answers.
	mustKubectl(t, lc, ctxName, "scale", "deployment", "web2", "--replicas=1")
	scaled := time.Now()
	var left pod
	eventually(t, 30*time.Second, func() error {
		out, err := kubectl(t, lc, ctxName, "get", "pods", "-l", "app=web2", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{"\n"}{end}`)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var live []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 1 {
				live = append(live, f[0])
			}
		}
		if len(live) != 1 {
			return fmt.Errorf("pods of web2 not being deleted: %v", live)
		}
		for _, p := range pods {
			if p.name == live[0] {
				left = p
			}
		}
		return nil
	})
	endpointRule := regexp.MustCompile(`default/web2/tcp/[^_ ]*__([0-9.]+)/8080`)
	for _, p := range lc.Processes {
		if p.Role != "agent" {
			continue
		}
		eventually(t, 30*time.Second, func() error {
			out, err := exec.Command("ip", "netns", "exec", p.Netns, "nft", "list", "table", "ip", "skiff-proxy").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: nft list table: %v\n%s", p.Name, err, out)
			}
			var ips []string
			for _, m := range endpointRule.FindAllStringSubmatch(string(out), -1) {
				if !slices.Contains(ips, m[1]) {
					ips = append(ips, m[1])
				}
			}
			if len(ips) != 1 || ips[0] != left.ip {
				return fmt.Errorf("%s balances web2 over %v, want only %s", p.Name, ips, left.ip)
			}
			return nil
		})
	}
	t.Logf("scaled to one: every node's kernel had only %s after %s", left.name, time.Since(scaled).Round(10*time.Millisecond))
	var gone []string
	for _, p := range pods {
		if p != left {
			gone = append(gone, p.name)
		}
	}
	runPod("agent-2", answers([]string{left.name}, gone...), "get", "--count", `"10"`, "http://web2/hostname")

	// The Deployment goes, so that no pod is still starting or stopping
	// when the cluster is taken down.
	mustKubectl(t, lc, ctxName, "delete", "deployment", "web2")
	eventually(t, 60*time.Second, func() error {
		out, err := kubectl(t, lc, ctxName, "get", "pods", "-l", "app=web2", "-o", "name")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("pods of web2 left: %q %v", out, err)
		}
		return nil
	})
}

// servicesDiagnostics logs, when t has failed, what the nodes' kernels and
// the API say about Services, for a failure seen only in CI.
func servicesDiagnostics(t *testing.T, lc *cluster.LocalCluster, ctxName string) {
	if !t.Failed() {
		return
	}
	var b strings.Builder
	for _, args := range [][]string{
		{"get", "pods", "-o", "wide"},
		{"get", "endpointslices", "-o", "wide"},
	} {
		out, _ := kubectl(t, lc, ctxName, args...)
		fmt.Fprintf(&b, "--- kubectl %s\n%s\n", strings.Join(args, " "), out)
	}
	for _, p := range lc.Processes {
		if p.Role != "agent" {
			continue
		}
		out, _ := exec.Command("ip", "netns", "exec", p.Netns, "nft", "list", "table", "ip", "skiff-proxy").CombinedOutput()
		fmt.Fprintf(&b, "--- %s: nft list table ip skiff-proxy\n%s\n", p.Name, out)
	}
	t.Logf("diagnostics:\n%s%s", b.String(), serverLogs(lc))
}

// postInNetns sends an empty POST to addr's path from inside the named
// network namespace (a node's), where pod addresses are routed.
func postInNetns(ns, addr, path string) error {
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked and ends with this goroutine, so it is
		// never reused outside the host's namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "POST %s HTTP/1.0\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", path, addr); err != nil {
			errc <- err
			return
		}
		status, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && !strings.Contains(status, " 200 ") {
			err = fmt.Errorf("POST %s%s: %s", addr, path, strings.TrimSpace(status))
		}
		errc <- err
	}()
	return <-errc
}
