package nodeagent

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/nodeagent/network"
)

// requireNFT skips a test that programs nftables where nft is missing,
// except in CI.
func requireNFT(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft is missing (apt-get install nftables), and CI must run this test")
		}
		t.Skip("needs nft (Debian package nftables)")
	}
}

// otherHost is a network namespace acting as another machine on the
// node's network: a veth from it to the node, the node's end holding
// nodeIP.
type otherHost struct {
	ns, nodeIP, ip string
}

func newOtherHost(t *testing.T) *otherHost {
	t.Helper()
	n := rand.IntN(64) * 4
	sub := rand.IntN(250)
	h := &otherHost{
		ns:     fmt.Sprintf("skhp%06x", rand.Uint32()&0xffffff),
		nodeIP: fmt.Sprintf("10.198.%d.%d", sub, n+1),
		ip:     fmt.Sprintf("10.198.%d.%d", sub, n+2),
	}
	veth := h.ns + "n"
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", h.ns).Run() // takes the veth pair with it
		_ = exec.Command("ip", "link", "del", veth).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", h.ns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
		{"addr", "add", h.nodeIP + "/30", "dev", veth},
		{"link", "set", veth, "up"},
		{"-n", h.ns, "addr", "add", h.ip + "/30", "dev", "eth0"},
		{"-n", h.ns, "link", "set", "eth0", "up"},
		{"-n", h.ns, "link", "set", "lo", "up"},
		{"-n", h.ns, "route", "add", "default", "via", h.nodeIP},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return h
}

// nsPath is "" for the node's own namespace.
func httpGetFrom(nsPath, url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, netw, addr string) (net.Conn, error) {
			return network.DialInNetNS(ctx, nsPath, netw, addr)
		},
	}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return string(body), err
}

func udpAskFrom(nsPath, addr, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := network.DialInNetNS(ctx, nsPath, "udp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	return string(buf[:n]), err
}

// TestHostPortReachesPodFromOtherHostsTheNodeAndPods runs a pod whose
// container ports 8080/TCP and 8081/UDP ask for one host port: another
// host reaches it at the node's address (and the pod sees that host's own
// address), so does the node itself, and so do pods of the node, over TCP
// and UDP, and the node at 127.0.0.1 too. After the agent restarts over a
// table that was lost meanwhile, the port works again; once the pod is
// deleted, the port is closed and no rule names it.
func TestHostPortReachesPodFromOtherHostsTheNodeAndPods(t *testing.T) {
	requireRoot(t)
	requireNFT(t)
	host := newOtherHost(t)
	hp := int32(20000 + rand.IntN(10000))
	srv := serverCtr("main")
	srv.Args = []string{"serve", "--port", "8080", "--udp-port", "8081"}
	srv.Ports = []corev1.ContainerPort{
		{ContainerPort: 8080, HostPort: hp, Protocol: corev1.ProtocolTCP},
		{ContainerPort: 8081, HostPort: hp, Protocol: corev1.ProtocolUDP},
	}
	pod := uniquePod("hp-server", srv)
	client := fake.NewSimpleClientset(pod)
	a := startRealAgentKeep(t, client)
	table := a.bridge + "-hostports"
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", table).Run() })
	waitPod(t, client, "hp-server", 30*time.Second, ready)

	hostNS := "/run/netns/" + host.ns
	addr := net.JoinHostPort(host.nodeIP, strconv.Itoa(int(hp)))
	reachable := func(what string) {
		t.Helper()
		eventually(t, 10*time.Second, what+": from another host", func() (bool, string) {
			name, err := httpGetFrom(hostNS, "http://"+addr+"/hostname")
			if err != nil || name != "hp-server\n" {
				return false, fmt.Sprintf("TCP: %q %v", name, err)
			}
			name, err = udpAskFrom(hostNS, addr, "hostname")
			return err == nil && name == "hp-server\n", fmt.Sprintf("UDP: %q %v", name, err)
		})
		eventually(t, 10*time.Second, what+": from the node", func() (bool, string) {
			name, err := httpGetFrom("", "http://"+addr+"/hostname")
			if err != nil || name != "hp-server\n" {
				return false, fmt.Sprintf("TCP: %q %v", name, err)
			}
			name, err = udpAskFrom("", addr, "hostname")
			return err == nil && name == "hp-server\n", fmt.Sprintf("UDP: %q %v", name, err)
		})
	}
	reachable("host port")
	// The other host's address reaches the pod unchanged, as with portmap.
	if ip, err := httpGetFrom(hostNS, "http://"+addr+"/clientip"); err != nil || ip != host.ip+"\n" {
		t.Fatalf("client address seen by the pod: %q %v, want %s", ip, err, host.ip)
	}
	if ip, err := udpAskFrom(hostNS, addr, "clientip"); err != nil || ip != host.ip+"\n" {
		t.Fatalf("UDP client address seen by the pod: %q %v, want %s", ip, err, host.ip)
	}

	// At 127.0.0.1 from the node, once the pod bridge lets loopback-sourced
	// packets out (route_localnet, which the service proxy sets with its
	// guard; this test's agent runs no proxy).
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+a.bridge+"/route_localnet", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	local := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(hp)))
	if name, err := httpGetFrom("", "http://"+local+"/hostname"); err != nil || name != "hp-server\n" {
		t.Fatalf("TCP at %s from the node: %q %v", local, name, err)
	}
	if name, err := udpAskFrom("", local, "hostname"); err != nil || name != "hp-server\n" {
		t.Fatalf("UDP at %s from the node: %q %v", local, name, err)
	}

	// From pods of the node, at the node's address.
	for _, c := range []struct{ name, args string }{
		{"hp-tcp-client", "get http://" + addr + "/hostname"},
		{"hp-udp-client", "udp " + addr + " hostname"},
	} {
		p := uniquePod(c.name, ctr("main", strings.Fields(c.args)...))
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		if _, err := client.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPod(t, client, c.name, 30*time.Second, phaseIs(corev1.PodSucceeded))
		eventually(t, 10*time.Second, c.name+" output", func() (bool, string) {
			code, body := a.endpointGet(t, "/containerLogs/default/"+c.name+"/main")
			return code == 200 && body == "hp-server\n", fmt.Sprintf("%d %q", code, body)
		})
	}

	// The agent stops; the kernel's rules are lost meanwhile; the restarted
	// agent writes them again for the pod it adopts.
	a.stop()
	if out, err := exec.Command("nft", "delete", "table", "ip", table).CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v: %s", err, out)
	}
	if _, err := httpGetFrom(hostNS, "http://"+addr+"/hostname"); err == nil {
		t.Fatal("host port answered with its rules deleted")
	}
	a.restart(t)
	reachable("after the agent restarted")

	p, err := getPod(client, "hp-server")
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	p.DeletionTimestamp = &now
	if _, err := client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "host port closed with the pod gone", func() (bool, string) {
		if _, err := getPod(client, "hp-server"); err == nil {
			return false, "pod object still there"
		}
		if _, err := httpGetFrom(hostNS, "http://"+addr+"/hostname"); err == nil {
			return false, "TCP still answers"
		}
		out, _ := exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
		if strings.Contains(string(out), strconv.Itoa(int(hp))) {
			return false, "rules left:\n" + string(out)
		}
		return true, ""
	})
}
