package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fault kinds. A kind that kills or isolates the Raft leader says "leader" or "primary":
// only the kill counts as a leader kill in the figures ("leader" in its kind).
const (
	FaultKillLeader       = "kill-leader"       // SIGKILL the leader, restart it after hold
	FaultKillFollower     = "kill-follower"     // SIGKILL a follower, restart it after hold
	FaultPause            = "pause"             // SIGSTOP a server for hold, then SIGCONT
	FaultRestartAll       = "restart-all"       // SIGKILL every server at once, restart them all
	FaultKillAgent        = "kill-agent"        // SIGKILL an agent, restart it after hold
	FaultPartition        = "partition"         // cut a follower's link for hold (netns only)
	FaultPartitionPrimary = "partition-primary" // cut the Raft leader's link: it is the minority (netns only)
	FaultNetem            = "netem"             // tc netem delay and loss on a server's link (netns only)
	FaultSlowDisk         = "slow-disk"         // throttle the Raft leader's disk writes to a few IOPS (blkio cgroup)
)

// AllFaults is every kind, in the order the default schedule interleaves them.
var AllFaults = []string{FaultKillLeader, FaultKillFollower, FaultPause, FaultRestartAll, FaultKillAgent,
	FaultPartition, FaultPartitionPrimary, FaultNetem, FaultSlowDisk}

// netnsFaults need each server in its own network namespace.
var netnsFaults = []string{FaultPartition, FaultPartitionPrimary, FaultNetem}

// plannedFault is one fault of a schedule: its kind, when it should start (from the start of
// the load) and how long it is held before recovery.
type plannedFault struct {
	Kind string
	At   time.Duration
	Hold time.Duration
	Pick uint64 // chooses among candidate targets (a follower, a server, an agent)
}

// ParseFaults checks a comma-separated list of kinds ("" or "all": every kind).
func ParseFaults(s string) ([]string, error) {
	if s == "" || s == "all" {
		return slices.Clone(AllFaults), nil
	}
	var out []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(AllFaults, k) {
			return nil, fmt.Errorf("bench: unknown fault %q (kinds: %s)", k, strings.Join(AllFaults, ","))
		}
		out = append(out, k)
	}
	return out, nil
}

// agentSlots is how many slots a kill-agent fault takes: it lasts until the killed node's
// pods run elsewhere (the node monitor grace period, the pods' toleration, rescheduling).
const agentSlots = 5

// planFaults spreads faults evenly over the load phase, after a warm-up and before a
// cool-down. Leader kills make up at least leaderKills of them (the acceptance figures need
// 20 in five minutes); the other kinds come once each, then round-robin (kill-agent only
// once, in a longer slot), shuffled by the seed. The same seed and arguments always give
// the same schedule.
func planFaults(seed uint64, kinds []string, load time.Duration, leaderKills int) []plannedFault {
	if len(kinds) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x5c1ff))
	const warmup, cooldown, slotMin = 8 * time.Second, 8 * time.Second, 8500 * time.Millisecond
	span := load - warmup - cooldown
	if span < slotMin {
		return nil
	}
	n := int(span / slotMin)
	agent := slices.Contains(kinds, FaultKillAgent) && n >= agentSlots+1
	if agent {
		n -= agentSlots
	}
	var seq []string
	others := slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == FaultKillLeader || k == FaultKillAgent })
	wantLeader := slices.Contains(kinds, FaultKillLeader)
	nLeader := 0
	if wantLeader {
		nLeader = max(min(leaderKills, n-len(others)), n-len(others)*3, 1)
		nLeader = min(nLeader, n)
	}
	for range nLeader {
		seq = append(seq, FaultKillLeader)
	}
	for i := 0; len(seq) < n && len(others) > 0; i++ {
		seq = append(seq, others[i%len(others)])
	}
	if agent {
		seq = append(seq, FaultKillAgent)
	}
	if len(seq) == 0 {
		return nil
	}
	rng.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
	weight := func(k string) int {
		if k == FaultKillAgent {
			return agentSlots
		}
		return 1
	}
	total := 0
	for _, k := range seq {
		total += weight(k)
	}
	slot := span / time.Duration(total)
	out := make([]plannedFault, len(seq))
	at := warmup
	for i, k := range seq {
		out[i] = plannedFault{Kind: k, At: at, Hold: holdFor(k, rng), Pick: rng.Uint64()}
		at += time.Duration(weight(k)) * slot
	}
	return out
}

// holdFor is how long a fault lasts before recovery: long enough that an election must
// happen (the Raft timeouts are 1 s), short enough that twenty fit in five minutes.
func holdFor(kind string, rng *rand.Rand) time.Duration {
	switch kind {
	case FaultPause, FaultPartition, FaultPartitionPrimary, FaultNetem, FaultSlowDisk:
		return 3*time.Second + time.Duration(rng.IntN(2000))*time.Millisecond
	case FaultKillAgent:
		return 2 * time.Second
	default:
		return time.Second + time.Duration(rng.IntN(1000))*time.Millisecond
	}
}
