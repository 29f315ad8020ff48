package cluster_test

import (
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

func TestAgentJoinsWithTheAgentTokenOnly(t *testing.T) {
	lc := upCluster(t)
	s1 := process(lc, "skiff-1")
	raw, err := os.ReadFile(filepath.Join(s1.DataDir, "tls", "agent-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	agent := func(name, token string) *exec.Cmd {
		return exec.Command(skiffBin, "agent", "--runtime", "hollow", "--name", name, "--data-dir", filepath.Join(t.TempDir(), name),
			"--server", s1.APIURL, "--token", token, "--listen", "127.0.0.1:0", "--node-ip", "127.0.0.1")
	}
	// A wrong agent key is refused by the server.
	parsed, err := cluster.ParseAgentToken(token)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := "skiff-agent::" + parsed.CAHash + "::" + strings.Repeat("ab", 32)
	if out, err := agent("bad-key", wrongKey).CombinedOutput(); err == nil || !strings.Contains(string(out), "wrong agent token") {
		t.Fatalf("a wrong agent key: %v\n%s", err, out)
	}
	// A token pinning another CA makes the agent refuse the server.
	other, err := cluster.DeriveKeys(cluster.NewServerToken())
	if err != nil {
		t.Fatal(err)
	}
	forged := "skiff-agent::" + other.CAHash + "::" + strings.Repeat("ab", 32)
	if out, err := agent("bad-ca", forged).CombinedOutput(); err == nil || !strings.Contains(string(out), "refusing to join") {
		t.Fatalf("a token pinning another CA: %v\n%s", err, out)
	}
	// The right token: the agent joins, gets system:node:<name>, and its node goes Ready.
	good := agent("joined-1", token)
	logf, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	good.Stdout, good.Stderr = logf, logf
	if err := good.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = good.Process.Kill(); _ = good.Wait() }()
	eventually(t, 60*time.Second, func() error {
		out, err := kubectl(t, lc, "skiff-2", "get", "node", "joined-1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || out != "True" {
			log, _ := os.ReadFile(logf.Name())
			return errorf("node joined-1 Ready=%q %v\n%s", out, err, log)
		}
		return nil
	})
	// The agent's logs/exec endpoint serves only cluster-CA certificates in system:masters
	// (the apiserver's proxy identity): not anonymous clients, not node identities.
	port, err := kubectl(t, lc, "skiff-1", "get", "node", "joined-1", "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}")
	if err != nil || port == "" || port == "0" {
		t.Fatalf("kubelet port %q: %v", port, err)
	}
	url := "https://127.0.0.1:" + port + "/containerLogs/default/nope/nope"
	get := func(kubeconfig, context string) (int, error) {
		var tc tls.Config
		tc.InsecureSkipVerify = true // the agent's serving certificate is self-signed, as the kubelet's
		if kubeconfig != "" {
			rc, err := cluster.RestConfig(kubeconfig, context)
			if err != nil {
				return 0, err
			}
			c, err := tls.X509KeyPair(rc.TLSClientConfig.CertData, rc.TLSClientConfig.KeyData)
			if err != nil {
				return 0, err
			}
			tc.Certificates = []tls.Certificate{c}
		}
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tc}}).Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get("", ""); err == nil {
		t.Fatalf("an anonymous client got HTTP %d from the agent", code)
	}
	if code, err := get(lc.Kubeconfig, "skiff-1"); err != nil || code == http.StatusForbidden || code == http.StatusUnauthorized {
		t.Fatalf("the admin: HTTP %d, %v", code, err)
	}
}
