package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PeerResult is the etcd side of a chaos run: the same register workload at the store
// level and the same leader kills, against three etcd members.
type PeerResult struct {
	System       string        `json:"system"`
	Version      string        `json:"version"`
	Linearizable bool          `json:"linearizable"`
	Check        string        `json:"check"`
	Ops          int           `json:"ops"`
	LostWrites   int           `json:"lost_writes"`
	Faults       []FaultResult `json:"faults"`
}

// runEtcdPeer starts a three-member etcd under root, runs the register workload with
// clientsPer clients per member for d, SIGKILLs the leader on the schedule (restarting it
// after the hold), and checks the history as for skiff.
func runEtcdPeer(ctx context.Context, bin, root string, d time.Duration, seed uint64, clientsPer, keys int, say func(string, ...any)) (*PeerResult, error) {
	ec, err := startEtcd(ctx, bin, root, 3)
	if err != nil {
		return nil, err
	}
	defer func() { ec.stop() }()
	res := &PeerResult{System: SystemEtcd, Version: EtcdVersion(ctx, bin)}
	var clis []*clientv3.Client
	defer func() {
		for _, c := range clis {
			c.Close()
		}
	}()
	t0 := time.Now()
	load := newRegisterLoad(t0, keys, 5*time.Second)
	loadCtx, stop := context.WithTimeout(ctx, d)
	defer stop()
	var wg sync.WaitGroup
	for m := range 3 {
		for c := range clientsPer {
			cli, err := newEtcdClient(ctx, ec.clientURLs[m])
			if err != nil {
				stop()
				wg.Wait()
				return nil, err
			}
			clis = append(clis, cli)
			wg.Go(func() { load.run(loadCtx, 1000+m*clientsPer+c, ec.memberName(m), &etcdRegister{cli: cli}) })
		}
	}
	plan := planFaults(seed, []string{FaultKillLeader}, d, 1<<30)
	for _, pf := range plan {
		sleepCtx(loadCtx, time.Until(t0.Add(pf.At)))
		if loadCtx.Err() != nil {
			break
		}
		r := killEtcdLeader(loadCtx, ec, root, pf.Hold)
		r.StartS, r.EndS = r.Start.Sub(t0).Seconds(), r.End.Sub(t0).Seconds()
		say("etcd fault %s on %v: election %.0f ms, healthy after %.0f ms %s", r.Kind, r.Targets, r.ElectionMs, r.RecoveredMs, r.Error)
		res.Faults = append(res.Faults, r)
	}
	<-loadCtx.Done()
	wg.Wait()
	if err := ec.waitLeader(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	final, err := load.finalReads(ctx, "e1", &etcdRegister{cli: clis[0]})
	if err != nil {
		return nil, err
	}
	chk := checkRegister(load.hist.snapshot(), final, 2*time.Minute)
	res.Linearizable, res.Check, res.Ops, res.LostWrites = chk.Result == "Ok", string(chk.Result), chk.Ops, len(chk.LostWrites)
	succ := load.successTimes([]string{"e1", "e2", "e3"})
	for i := range res.Faults {
		setUnavailability(&res.Faults[i], succ, d)
	}
	return res, nil
}

// killEtcdLeader SIGKILLs the leading member, measures the election among the others,
// restarts it after hold with the same command line and data, and waits for health.
func killEtcdLeader(ctx context.Context, ec *etcdCluster, root string, hold time.Duration) FaultResult {
	r := FaultResult{System: SystemEtcd, Kind: FaultKillLeader}
	li, err := ec.Leader(ctx)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	p, deadID := ec.procs[li], ec.memberID(ctx, li)
	r.Targets = []string{ec.memberName(li)}
	r.Start = time.Now()
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	r.Applied = true
	for time.Since(r.Start) < hold+10*time.Second && ctx.Err() == nil {
		if ec.leaderAmong(ctx, li, deadID) {
			r.ElectionMs = ms(time.Since(r.Start))
			break
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	sleepCtx(ctx, time.Until(r.Start.Add(hold)))
	np, err := startProc(p.name, filepath.Join(root, fmt.Sprintf("%s.%d.log", ec.memberName(li), time.Now().UnixNano())), p.cmd.Path, p.cmd.Args[1:]...)
	if err != nil {
		r.Error = err.Error()
	} else {
		ec.procs[li] = np
	}
	r.End = time.Now()
	if err := ec.waitLeader(context.WithoutCancel(ctx), 30*time.Second); err != nil && r.Error == "" {
		r.Error = err.Error()
	}
	r.RecoveredMs = ms(time.Since(r.Start))
	return r
}

// memberID is a member's etcd ID, 0 when it does not answer.
func (c *etcdCluster) memberID(ctx context.Context, i int) uint64 {
	cli, err := newEtcdClient(ctx, c.clientURLs[i])
	if err != nil {
		return 0
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := cli.Status(sctx, c.clientURLs[i])
	if err != nil || st.Header == nil {
		return 0
	}
	return st.Header.MemberId
}

// leaderAmong reports whether a member other than dead names a leader other than deadID:
// a new leader has been elected.
func (c *etcdCluster) leaderAmong(ctx context.Context, dead int, deadID uint64) bool {
	for i, u := range c.clientURLs {
		if i == dead {
			continue
		}
		cli, err := newEtcdClient(ctx, u)
		if err != nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		st, err := cli.Status(sctx, u)
		cancel()
		cli.Close()
		if err == nil && st.Leader != 0 && st.Leader != deadID {
			return true
		}
	}
	return false
}

// setUnavailability fills a fault's unavailability from the acknowledged writes.
func setUnavailability(f *FaultResult, succ successLog, end time.Duration) {
	if f.Start.IsZero() {
		return
	}
	start := time.Duration(f.StartS * float64(time.Second))
	until := start + time.Duration(f.RecoveredMs*float64(time.Millisecond))
	worst, targeted, per := unavailability(succ, start, until, end, f.Targets)
	f.UnavailableMs, f.TargetedMs = ms(worst), ms(targeted)
	f.PerServerMs = map[string]float64{}
	for s, d := range per {
		f.PerServerMs[s] = ms(d)
	}
}
