package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// leaderLog is every server's log: autopilot names each membership change it makes there.
func leaderLog(t *testing.T, lc *cluster.LocalCluster) string {
	t.Helper()
	var b strings.Builder
	for _, p := range lc.Processes {
		data, _ := os.ReadFile(p.LogFile)
		b.Write(data)
	}
	return b.String()
}

func TestFourthServerJoinsIsPromotedAndIsRemovedAfterItDies(t *testing.T) {
	lc := upCluster(t)
	s1 := process(lc, "skiff-1")
	// The new server joins through gossip with the same token and no bootstrap.
	p := cluster.Process{
		Name: "skiff-4", Role: "server",
		APIURL:     "https://" + freeAddr(t),
		RaftAddr:   freeAddr(t),
		GossipAddr: freeAddr(t),
		DataDir:    filepath.Join(lc.Dir, "skiff-4"),
	}
	p.LogFile = filepath.Join(p.DataDir, "server.log")
	p.Args = []string{"server", "--name", p.Name, "--data-dir", p.DataDir, "--token-file", filepath.Join(lc.Dir, "token"),
		"--api-addr", strings.TrimPrefix(p.APIURL, "https://"), "--raft-addr", p.RaftAddr, "--gossip-addr", p.GossipAddr,
		"--join", s1.GossipAddr}
	// Make the leader quick to remove dead servers: restart the three with a short timeout.
	for i := range lc.Processes {
		q := &lc.Processes[i]
		q.Args = append(q.Args, "--dead-server-timeout", "3s")
	}
	if err := cluster.Down(lc.Dir, false, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if err := saveCluster(lc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cluster.Up(ctx, cluster.UpConfig{Dir: lc.Dir, Binary: skiffBin}); err != nil {
		t.Fatal(err)
	}
	lc, _ = cluster.LoadLocalCluster(lc.Dir)
	if err := cluster.StartProcess(lc, &p); err != nil {
		t.Fatal(err)
	}
	lc.Processes = append(lc.Processes, p)
	if err := saveCluster(lc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(grepLines(leaderLog(t, lc), "promoting caught-up server to voter"), "peer=skiff-4") {
			return fmt.Errorf("skiff-4 not promoted yet; autopilot said: %s", grepLines(leaderLog(t, lc), "autopilot", "skiff-4"))
		}
		return nil
	})
	// It serves the cluster's state.
	mustKubectl(t, lc, "skiff-1", "create", "configmap", "seen-by-4")
	rc, err := cluster.RestConfig(lc.Kubeconfig, "skiff-1")
	if err != nil {
		t.Fatal(err)
	}
	rc.Host = p.APIURL
	eventually(t, 20*time.Second, func() error {
		st := cluster.CollectStatus(context.Background(), []cluster.StatusTarget{{Name: "skiff-4", APIURL: p.APIURL, Config: rc}})
		if m := st.Members[0]; !m.Healthy || m.RaftState != "Follower" {
			return fmt.Errorf("skiff-4: %+v", m)
		}
		return nil
	})
	// Killed for good, it is removed once dead past the timeout: four voters less one dead
	// still leave a quorum.
	if err := syscall.Kill(lc.Processes[len(lc.Processes)-1].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		if !strings.Contains(grepLines(leaderLog(t, lc), "removing dead server"), "peer=skiff-4") {
			return errors.New("skiff-4 not removed yet")
		}
		return nil
	})
	mustKubectl(t, lc, "skiff-2", "create", "configmap", "after-removal")
}

func TestDownPurgeLeavesNothingBehind(t *testing.T) {
	lc := upCluster(t)
	var pids []int
	for _, p := range lc.Processes {
		pids = append(pids, p.PID)
	}
	if err := cluster.Down(lc.Dir, true, os.Stderr); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			if data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(data), ") Z ") {
				t.Fatalf("process %d still running after down", pid)
			}
		}
	}
	if _, err := os.Stat(lc.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there after down --purge: %v", lc.Dir, err)
	}
	for _, p := range lc.Processes {
		if c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.APIURL, "https://"), time.Second); err == nil {
			c.Close()
			t.Fatalf("%s's API port still open", p.Name)
		}
	}
	// The test's own cleanup runs Down again: it must cope with a cluster already gone.
	if err := os.MkdirAll(lc.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := saveCluster(lc); err != nil {
		t.Fatal(err)
	}
}

func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	if len(out) > 20 {
		out = out[len(out)-20:]
	}
	return strings.Join(out, "\n")
}
