package cluster_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

func TestThreeServersServeTheSameStateThroughEveryServer(t *testing.T) {
	lc := upCluster(t)
	st := status(t, lc)
	if st.Leader == "" || len(st.Members) != 3 {
		t.Fatalf("status: %+v", st)
	}
	for i, ctx := range []string{"skiff-1", "skiff-2", "skiff-3"} {
		mustKubectl(t, lc, ctx, "create", "configmap", fmt.Sprintf("cm-%d", i), "--from-literal=k=v")
	}
	for _, ctx := range []string{"skiff-1", "skiff-2", "skiff-3"} {
		out := mustKubectl(t, lc, ctx, "get", "configmaps", "-o", "name")
		for i := 0; i < 3; i++ {
			if !strings.Contains(out, fmt.Sprintf("configmap/cm-%d", i)) {
				t.Fatalf("%s does not list cm-%d:\n%s", ctx, i, out)
			}
		}
	}
}

func TestKilledLeaderIsReplacedAndCatchesUpAndFullRestartKeepsEverything(t *testing.T) {
	lc := upCluster(t)
	old := leader(t, lc, "")
	mustKubectl(t, lc, old, "create", "configmap", "before", "--from-literal=k=v")
	// The kubernetes Service lists every live server's API address.
	apiPorts := func(through string) string {
		out, _ := kubectl(t, lc, through, "get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[*].ports[*].port}")
		return out
	}
	portOf := func(name string) string {
		return process(lc, name).APIURL[strings.LastIndex(process(lc, name).APIURL, ":")+1:]
	}
	eventually(t, 20*time.Second, func() error {
		ip, _ := kubectl(t, lc, "skiff-2", "get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}")
		if ip != "10.96.0.1" {
			return errorf("kubernetes service clusterIP %q", ip)
		}
		if got := apiPorts(old); len(strings.Fields(got)) != 3 {
			return errorf("kubernetes endpoints ports %q, want the three servers'", got)
		}
		return nil
	})
	p := process(lc, old)
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	newLeader := leader(t, lc, old)
	// Writes go on through the survivors within seconds.
	var survivor string
	for _, q := range lc.Processes {
		if q.Name != old && q.Role == "server" {
			survivor = q.Name
		}
	}
	eventually(t, 10*time.Second, func() error {
		_, err := kubectl(t, lc, survivor, "create", "configmap", "after", "--from-literal=k=v")
		return err
	})
	t.Logf("leader %s killed; %s leads; a write succeeded %s after the kill", old, newLeader, time.Since(killed).Round(time.Millisecond))
	eventually(t, 30*time.Second, func() error {
		if got := apiPorts(survivor); strings.Contains(got, portOf(old)) || len(strings.Fields(got)) != 2 {
			return errorf("kubernetes endpoints ports %q still list the killed server's %s", got, portOf(old))
		}
		return nil
	})
	// The old leader restarts from its data and catches up.
	if err := cluster.StartProcess(lc, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		out, err := kubectl(t, lc, old, "get", "configmap", "after", "-o", "name")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	// Stop everything, start again: no re-bootstrap, every object there.
	if err := cluster.Down(lc.Dir, false, os.Stderr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cluster.Up(ctx, cluster.UpConfig{Dir: lc.Dir, Binary: skiffBin}); err != nil {
		t.Fatalf("restart: %v\n%s", err, serverLogs(lc))
	}
	for _, name := range []string{"before", "after"} {
		mustKubectl(t, lc, "skiff-2", "get", "configmap", name)
	}
}

func TestRecoverFromOneSurvivor(t *testing.T) {
	lc := upCluster(t)
	mustKubectl(t, lc, "skiff-1", "create", "configmap", "kept", "--from-literal=k=v")
	// Two servers are lost for good; the third is stopped and recovered alone.
	for _, name := range []string{"skiff-2", "skiff-3"} {
		_ = syscall.Kill(process(lc, name).PID, syscall.SIGKILL)
	}
	survivor := process(lc, "skiff-1")
	cluster.StopProcess(survivor.PID, 10*time.Second)
	out, err := exec.Command(skiffBin, "server", "recover", "--name", "skiff-1", "--data-dir", survivor.DataDir,
		"--peers", "skiff-1="+survivor.RaftAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	if err := cluster.StartProcess(lc, survivor); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		out, err := kubectl(t, lc, "skiff-1", "get", "configmap", "kept", "-o", "name")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		_, err = kubectl(t, lc, "skiff-1", "create", "configmap", "new-after-recovery")
		return err
	})
}

func TestForeignCredentialsAndPlainHTTPAreRefused(t *testing.T) {
	lc := upCluster(t)
	s1 := process(lc, "skiff-1")
	// Plain HTTP to the HTTPS port gets no API.
	out, err := exec.Command("/usr/bin/kubectl", "--server", strings.Replace(s1.APIURL, "https://", "http://", 1), "get", "ns").CombinedOutput()
	if err == nil {
		t.Fatalf("plain HTTP was served:\n%s", out)
	}
	// A certificate from another cluster's CA is not trusted, nor is that CA.
	other, err := cluster.DeriveKeys(cluster.NewServerToken())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := other.Issue(cluster.CertRequest{CommonName: "intruder", Groups: []string{"system:masters"}, Client: true, SerialSource: "x"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	real, err := os.ReadFile(s1.DataDir + "/tls/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("/usr/bin/kubectl", "--server", s1.APIURL, "--certificate-authority", write("ca.crt", real),
		"--client-certificate", write("c.crt", cert.CertPEM), "--client-key", write("c.key", cert.KeyPEM), "get", "ns").CombinedOutput()
	// kube-apiserver answers such a certificate with 401; skiff's TLS layer already refuses
	// the handshake (VerifyClientCertIfGiven). Either way nothing is served.
	if err == nil || !(strings.Contains(string(out), "Unauthorized") || strings.Contains(string(out), "unknown certificate authority")) {
		t.Fatalf("a foreign client certificate: err %v\n%s", err, out)
	}
	// A client that trusts a forged CA refuses the real servers. (Checked with a plain TLS
	// client: /usr/bin/kubectl's version dispatcher makes its own first request.)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: other.CAPool()}}}
	if resp, err := hc.Get(s1.APIURL + "/version"); err == nil || !strings.Contains(err.Error(), "certificate") {
		if resp != nil {
			resp.Body.Close()
		}
		t.Fatalf("a client trusting a forged CA: %v", err)
	}
	// A server with the wrong token cannot join: its gossip cannot be decrypted, and it
	// never becomes part of the Raft configuration.
	wrong := exec.Command(skiffBin, "server", "--name", "intruder", "--data-dir", dir+"/intruder", "--token", cluster.NewServerToken(),
		"--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--join", s1.GossipAddr)
	logf, _ := os.Create(dir + "/intruder.log")
	wrong.Stdout, wrong.Stderr = logf, logf
	if err := wrong.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = wrong.Process.Kill(); _ = wrong.Wait() }()
	time.Sleep(5 * time.Second)
	st := status(t, lc)
	if len(st.Members) != 3 || st.Leader == "intruder" {
		t.Fatalf("status after an intruder: %+v", st)
	}
	if strings.Contains(grepLines(leaderLog(t, lc), "adding server as non-voter"), "peer=intruder") {
		t.Fatal("the leader added a server with the wrong token")
	}
}
