package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/raftstore"
	"github.com/skiff-dev/skiff/raftstore/rafttest"
)

// writeLoad runs concurrent writers against every running node until stop, and returns the
// keys whose creates were acknowledged.
type writeLoad struct {
	mu    sync.Mutex
	acked map[string]string
	errs  int
	wg    sync.WaitGroup
}

func startLoad(ctx context.Context, c *rafttest.Cluster, writers int, prefix string) *writeLoad {
	l := &writeLoad{acked: map[string]string{}}
	nodes := c.Running()
	for w := 0; w < writers; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				n := nodes[(w+i)%len(nodes)]
				s := n.Store()
				if s == nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				key := fmt.Sprintf("%s%d-%d", prefix, w, i)
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := s.Create(wctx, key, []byte(key))
				cancel()
				l.mu.Lock()
				if err == nil {
					l.acked[key] = key
				} else {
					l.errs++
				}
				l.mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}(w)
	}
	return l
}

func (l *writeLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// checkAcked fails unless every acknowledged key is readable (linearizably) through s.
func (l *writeLoad) checkAcked(t *testing.T, ctx context.Context, s *raftstore.Store, prefix string) {
	t.Helper()
	res, err := s.List(ctx, prefix, raftstore.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, kv := range res.KVs {
		have[kv.Key] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.acked {
		if !have[k] {
			t.Fatalf("acknowledged write %s is missing (%d acked, %d present)", k, len(l.acked), len(have))
		}
	}
}

func TestLeaderKilledDuringLoadLosesNoAcknowledgedWrite(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 60*time.Second)
	loadCtx, stop := context.WithCancel(ctx)
	l := startLoad(loadCtx, c, 8, "/load/")
	rafttest.Eventually(t, 10*time.Second, func() error {
		if l.count() < 50 {
			return fmt.Errorf("%d writes so far", l.count())
		}
		return nil
	})
	old := c.Leader()
	old.Stop()
	before := l.count()
	newLeader := c.WaitLeader(10 * time.Second)
	rafttest.Eventually(t, 10*time.Second, func() error {
		if l.count() < before+50 {
			return fmt.Errorf("writes stalled at %d after the leader died", l.count())
		}
		return nil
	})
	stop()
	l.wg.Wait()
	l.checkAcked(t, ctx, newLeader.Store(), "/load/")
	// The old leader comes back and catches up.
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	l.checkAcked(t, ctx, old.Store(), "/load/")
}

func TestPartitionedFollowerCatchesUpAfterHealing(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 60*time.Second)
	f := c.Followers()[0]
	f.Layer.Isolate(true)
	for i := 0; i < 20; i++ {
		if _, err := c.Leader().Store().Put(ctx, fmt.Sprintf("/part/%d", i), []byte("v")); err != nil {
			t.Fatalf("write with one follower cut off: %v", err)
		}
	}
	// The cut-off node cannot serve a linearizable read.
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := f.Store().Get(rctx, "/part/0", raftstore.ReadOptions{})
	cancel()
	if err == nil {
		t.Fatal("a partitioned follower answered a linearizable read")
	}
	f.Layer.Isolate(false)
	got, err := f.Store().List(ctx, "/part/", raftstore.ListOptions{})
	if err != nil || len(got.KVs) != 20 {
		t.Fatalf("after healing: %d keys, %v", len(got.KVs), err)
	}
}

func TestLeaderOnTheMinoritySideStepsDown(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 60*time.Second)
	old := c.Leader()
	old.Layer.Isolate(true)
	// The majority elects a new leader and takes writes.
	var newLeader *rafttest.Node
	rafttest.Eventually(t, 10*time.Second, func() error {
		for _, n := range c.Running() {
			if n != old && n.Store().IsLeader() {
				newLeader = n
				return nil
			}
		}
		return errors.New("no leader on the majority side")
	})
	if _, err := newLeader.Store().Put(ctx, "/minority", []byte("majority")); err != nil {
		t.Fatal(err)
	}
	// The old leader loses its lease and refuses writes instead of acknowledging them.
	rafttest.Eventually(t, 5*time.Second, func() error {
		if old.Store().IsLeader() {
			return errors.New("isolated leader still leads")
		}
		return nil
	})
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := old.Store().Put(wctx, "/minority", []byte("lost"))
	cancel()
	if err == nil {
		t.Fatal("the isolated old leader acknowledged a write")
	}
	old.Layer.Isolate(false)
	rafttest.Eventually(t, 10*time.Second, func() error {
		kv, err := old.Store().Get(ctx, "/minority", raftstore.ReadOptions{})
		if err != nil || string(kv.Value) != "majority" {
			return fmt.Errorf("%q %v", kv.Value, err)
		}
		return nil
	})
}

func TestNodeRestartsFromItsDataDir(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{Tune: func(cfg *raftstore.Config) {
		cfg.SnapshotThreshold = 50 // recover from a snapshot plus the log after it
		cfg.TrailingLogs = 10
		cfg.SnapshotInterval = 100 * time.Millisecond
	}})
	ctx := rafttest.Ctx(t, 60*time.Second)
	f := c.Followers()[0]
	for i := 0; i < 200; i++ {
		if _, err := c.Leader().Store().Put(ctx, fmt.Sprintf("/rs/%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // let a snapshot happen
	f.Stop()
	for i := 200; i < 220; i++ {
		if _, err := c.Leader().Store().Put(ctx, fmt.Sprintf("/rs/%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := f.Store().List(ctx, "/rs/", raftstore.ListOptions{})
	if err != nil || len(got.KVs) != 220 {
		t.Fatalf("restarted node has %d keys, %v", len(got.KVs), err)
	}
	// Its revisions agree with the leader's.
	lead, _ := c.Leader().Store().Get(ctx, "/rs/150", raftstore.ReadOptions{})
	mine, _ := f.Store().Get(ctx, "/rs/150", raftstore.ReadOptions{Stale: true})
	if lead.ModRevision != mine.ModRevision || lead.ModRevision == 0 {
		t.Fatalf("revisions differ after restart: %d vs %d", lead.ModRevision, mine.ModRevision)
	}
}

func TestNewNodeCatchesUpBySnapshotInstall(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{Tune: func(cfg *raftstore.Config) {
		cfg.SnapshotThreshold = 64
		cfg.TrailingLogs = 8 // the log no longer reaches back: a new node needs the snapshot
		cfg.SnapshotInterval = 100 * time.Millisecond
	}})
	ctx := rafttest.Ctx(t, 60*time.Second)
	for i := 0; i < 500; i++ {
		if _, err := c.Leader().Store().Put(ctx, fmt.Sprintf("/snap/%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	n := c.AddNode()
	if err := c.Leader().Store().AddNonvoter(n.ID, n.Addr); err != nil {
		t.Fatal(err)
	}
	rafttest.Eventually(t, 20*time.Second, func() error {
		res, err := n.Store().List(ctx, "/snap/", raftstore.ListOptions{ReadOptions: raftstore.ReadOptions{Stale: true}})
		if err != nil || len(res.KVs) != 500 {
			return fmt.Errorf("new node has %d keys, %v", len(res.KVs), err)
		}
		return nil
	})
	if err := c.Leader().Store().AddVoter(n.ID, n.Addr); err != nil {
		t.Fatal(err)
	}
	servers, err := c.Leader().Store().Servers()
	if err != nil || len(servers) != 4 {
		t.Fatalf("configuration: %+v %v", servers, err)
	}
	st := c.Leader().Store().Stats(ctx)
	if len(st.Peers) != 4 {
		t.Fatalf("leader stats list %d peers", len(st.Peers))
	}
	for _, p := range st.Peers {
		if p.Err != "" {
			t.Fatalf("peer %s did not report: %s", p.Server.ID, p.Err)
		}
	}
	if err := c.Leader().Store().RemoveServer(n.ID); err != nil {
		t.Fatal(err)
	}
}

func TestFullRestartKeepsEveryAcknowledgedWrite(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 60*time.Second)
	loadCtx, stop := context.WithCancel(ctx)
	l := startLoad(loadCtx, c, 8, "/full/")
	rafttest.Eventually(t, 10*time.Second, func() error {
		if l.count() < 200 {
			return fmt.Errorf("%d writes", l.count())
		}
		return nil
	})
	// Stop all three while writes are in flight.
	for _, n := range c.Nodes {
		n.Stop()
	}
	stop()
	l.wg.Wait()
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitLeader(10 * time.Second)
	l.checkAcked(t, ctx, leader.Store(), "/full/")
}

func TestLeadershipChangesAreObserved(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	old := c.Leader()
	ch := old.Store().LeadershipChanges()
	if st := <-ch; !st.Leader || st.Term == 0 {
		t.Fatalf("leader's first observation: %+v", st)
	}
	if err := old.Store().TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-ch:
		if st.Leader {
			t.Fatalf("after transfer: %+v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("loss of leadership not observed")
	}
	nl := c.WaitLeader(10 * time.Second)
	if nl == old {
		t.Fatal("leadership did not move")
	}
	if st := <-nl.Store().LeadershipChanges(); !st.Leader {
		t.Fatalf("new leader's observation: %+v", st)
	}
}

func TestWrongSecretIsRefused(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 30*time.Second)
	// A node with another secret cannot join, nor forward writes to the leader.
	c.Secret = []byte("wrong")
	n := c.AddNode()
	if err := c.Leader().Store().AddNonvoter(n.ID, n.Addr); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if res, _ := n.Store().List(ctx, "/", raftstore.ListOptions{ReadOptions: raftstore.ReadOptions{Stale: true}}); len(res.KVs) != 0 || n.Store().Revision() != 0 {
		t.Fatal("a node with the wrong secret received the log")
	}
	if _, leader := n.Store().Leader(); leader != "" {
		t.Fatalf("a node with the wrong secret learned the leader %s", leader)
	}
}

// TestForwardedWriteEndsWhenItsLeaderGoesSilent: a follower forwards a write to a leader
// that then goes silent (paused, or its packets dropped) without closing a connection. The
// write must end as soon as the follower sees that leader go, as "outcome unknown", not hang
// until the caller's deadline; and a read on the follower waits for the new leader instead.
func TestForwardedWriteEndsWhenItsLeaderGoesSilent(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{})
	ctx := rafttest.Ctx(t, 60*time.Second)
	old := c.Leader()
	f := c.Followers()[0]
	if _, err := f.Store().Put(ctx, "/silent/warm", []byte("1")); err != nil {
		t.Fatal(err) // the forwarding connection is open before the fault
	}
	old.Layer.Silence(true)
	wctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	_, err := f.Store().Put(wctx, "/silent/lost", []byte("?"))
	cancel()
	if !errors.Is(err, raftstore.ErrIndeterminate) {
		t.Fatalf("forwarded write to a silent leader: got %v, want ErrIndeterminate", err)
	}
	if _, err := f.Store().Get(ctx, "/silent/warm", raftstore.ReadOptions{}); err != nil {
		t.Fatalf("linearizable read on the follower after a new election: %v", err)
	}
	if _, err := f.Store().Put(ctx, "/silent/after", []byte("2")); err != nil {
		t.Fatalf("write through the new leader: %v", err)
	}
	old.Layer.Silence(false)
}

// slowDialLayer counts a node's dials by address and makes each take a while, as a
// mutual-TLS handshake does on a busy machine.
type slowDialLayer struct {
	raftstore.Layer
	mu    sync.Mutex
	dials map[string]int
}

func (l *slowDialLayer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	l.mu.Lock()
	l.dials[addr]++
	l.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	return l.Layer.Dial(ctx, addr)
}

func (l *slowDialLayer) count(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dials[addr]
}

// TestConcurrentForwardsShareOneDial: many writes arriving at a follower that has no
// connection to the leader yet (after a start or a leader change) open one, not one each.
func TestConcurrentForwardsShareOneDial(t *testing.T) {
	var mu sync.Mutex
	layers := map[string]*slowDialLayer{}
	c := rafttest.New(t, 3, rafttest.Options{Tune: func(cfg *raftstore.Config) {
		l := &slowDialLayer{Layer: cfg.Layer, dials: map[string]int{}}
		mu.Lock()
		layers[cfg.ID] = l
		mu.Unlock()
		cfg.Layer = l
	}})
	ctx := rafttest.Ctx(t, 30*time.Second)
	leader, f := c.Leader(), c.Followers()[0]
	mu.Lock()
	layer := layers[f.ID]
	mu.Unlock()
	before := layer.count(leader.Addr)
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = f.Store().Put(ctx, fmt.Sprintf("/dial/%d", i), []byte("x"))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := layer.count(leader.Addr) - before; n != 1 {
		t.Errorf("64 concurrent forwarded writes dialled the leader %d times, want 1", n)
	}
}

// TestLeaderWhosePortRefusesIsReplacedAtOnce: with a 5 s heartbeat timeout, a stopped
// leader (its connections closed, its port refusing) is replaced in well under the timeout,
// and writes go on through the new leader.
func TestLeaderWhosePortRefusesIsReplacedAtOnce(t *testing.T) {
	c := rafttest.New(t, 3, rafttest.Options{Tune: func(cfg *raftstore.Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 5*time.Second, 5*time.Second, time.Second
	}})
	ctx := rafttest.Ctx(t, 60*time.Second)
	old := c.Leader()
	if _, err := old.Store().Put(ctx, "/failover/before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	old.Stop()
	nl := c.WaitLeader(20 * time.Second)
	took := time.Since(stopped)
	if nl == old {
		t.Fatal("the stopped node still leads")
	}
	if took >= 3*time.Second {
		t.Errorf("a new leader took %v after the old one's port closed, want well under the 5 s heartbeat timeout", took)
	}
	t.Logf("new leader %s %v after the old one stopped", nl.ID, took.Round(time.Millisecond))
	for _, n := range c.Running() {
		if _, err := n.Store().Put(ctx, "/failover/after-"+n.ID, []byte("2")); err != nil {
			t.Errorf("write through %s: %v", n.ID, err)
		}
	}
}
