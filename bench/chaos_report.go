package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// ChaosResult is result.json.
type ChaosResult struct {
	Seed             uint64            `json:"seed"`
	Duration         string            `json:"duration"`
	Started          time.Time         `json:"started"`
	Linearizable     bool              `json:"linearizable"`
	Check            string            `json:"check"` // porcupine's verdict: Ok, Illegal or Unknown (timed out)
	Ops              int               `json:"ops_checked"`
	DroppedUnknown   int               `json:"dropped_unobserved_unknown_writes"`
	LostWrites       int               `json:"lost_writes"`
	LostWriteSamples []string          `json:"lost_write_samples,omitempty"`
	Healthy          bool              `json:"healthy"`
	HealthError      string            `json:"health_error,omitempty"`
	NodesNotReady    []string          `json:"nodes_not_ready,omitempty"` // agents' Nodes not Ready after the run
	FinalReadError   string            `json:"final_read_error,omitempty"`
	Faults           []FaultResult     `json:"faults"`
	Skipped          []string          `json:"skipped,omitempty"`
	Peer             *PeerResult       `json:"peer,omitempty"`
	Deployments      *DeploymentCheck  `json:"deployments,omitempty"`
	Pods             *PodCheck         `json:"pods,omitempty"`
	Containers       *ContainerCheck   `json:"real_agents,omitempty"` // what the real agents ran, from their cgroups
	Verbs            []VerbResult      `json:"verbs"`
	Resources        []ServerResources `json:"servers"`
	Timeline         []point           `json:"timeline"`
	explain          string
}

// Failures lists the checks that failed; the run passes when it is empty.
func (r *ChaosResult) Failures() []string {
	var out []string
	if !r.Linearizable {
		out = append(out, "history is not linearizable (porcupine: "+r.Check+")")
	}
	if r.LostWrites > 0 {
		out = append(out, fmt.Sprintf("%d acknowledged writes lost", r.LostWrites))
	}
	if r.FinalReadError != "" {
		out = append(out, "final state unreadable: "+r.FinalReadError)
	}
	if !r.Healthy {
		out = append(out, "cluster not healthy after the run: "+r.HealthError)
	}
	if len(r.NodesNotReady) > 0 {
		out = append(out, "nodes not Ready after the run: "+strings.Join(r.NodesNotReady, ", "))
	}
	if d := r.Deployments; d != nil && !d.Converged {
		out = append(out, fmt.Sprintf("Deployments not converged %.0fs after the last fault: %s", d.BoundS, strings.Join(first(d.NotConverged, 5), "; ")))
	}
	if p := r.Pods; p != nil {
		if len(p.DoubleBound) > 0 {
			out = append(out, fmt.Sprintf("%d pods bound to two nodes: %s", len(p.DoubleBound), strings.Join(first(p.DoubleBound, 5), "; ")))
		}
		if len(p.LeftAfterDeletion) > 0 {
			out = append(out, fmt.Sprintf("%d pods left after their deletion: %s", len(p.LeftAfterDeletion), strings.Join(first(p.LeftAfterDeletion, 5), "; ")))
		}
	}
	if cc := r.Containers; cc != nil {
		out = append(out, cc.failures()...)
	}
	for _, f := range r.Faults {
		if f.Kind == FaultKillAgent && f.Applied && f.RescheduleMs == 0 && f.PodsOnTarget > 0 {
			out = append(out, "pods not rescheduled off killed agent "+strings.Join(f.Targets, ",")+": "+f.Error)
		}
	}
	if r.Peer != nil && (!r.Peer.Linearizable || r.Peer.LostWrites > 0) {
		out = append(out, fmt.Sprintf("etcd peer: linearizable=%v lost=%d", r.Peer.Linearizable, r.Peer.LostWrites))
	}
	return out
}

func first(s []string, n int) []string { return s[:min(len(s), n)] }

// figures sums up one kind of fault of one system: count, median and p99 unavailability,
// median election time.
type figures struct {
	n                    int
	med, p99, elect, max time.Duration
	targeted, resched    time.Duration // medians
}

func summarize(fs []FaultResult, kind string) figures {
	var un, el, tg, rs []time.Duration
	d := func(msv float64) time.Duration { return time.Duration(msv * float64(time.Millisecond)) }
	for _, f := range fs {
		if f.Kind != kind || !f.Applied {
			continue
		}
		un = append(un, d(f.UnavailableMs))
		tg = append(tg, d(f.TargetedMs))
		if f.ElectionMs > 0 {
			el = append(el, d(f.ElectionMs))
		}
		if f.RescheduleMs > 0 {
			rs = append(rs, d(f.RescheduleMs))
		}
	}
	return figures{n: len(un), med: percentile(un, 0.5), p99: percentile(un, 0.99), max: percentile(un, 1), elect: percentile(el, 0.5),
		targeted: percentile(tg, 0.5), resched: percentile(rs, 0.5)}
}

// WriteSummary writes the markdown table: per fault kind, skiff's figures and, for leader
// kills, etcd's beside them; then the checks.
func (r *ChaosResult) WriteSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# skiff chaos run (seed %d, %s)\n\n", r.Seed, r.Duration)
	b.WriteString("Write unavailability: per fault, the longest time without an acknowledged write that overlaps the fault and its recovery (until the cluster is healthy again), worst among the servers the fault did not target (all servers for restart-all); \"targeted\" is the same on the servers it hit (a partitioned server's clients wait for the heal). Reschedule: from killing an agent until the steady Deployment's pods are all ready on other nodes.\n\n")
	b.WriteString("| system | fault | count | unavailable median ms | p99 ms | max ms | election median ms | targeted median ms | reschedule ms |\n|---|---|---|---|---|---|---|---|---|\n")
	row := func(sys, kind string, f figures) {
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", sys, kind, f.n, ms(f.med), ms(f.p99), ms(f.max), ms(f.elect), ms(f.targeted), ms(f.resched))
	}
	for _, k := range AllFaults {
		if f := summarize(r.Faults, k); f.n > 0 {
			row("skiff", k, f)
			if k == FaultKillLeader && r.Peer != nil {
				row("etcd "+r.Peer.Version, k, summarize(r.Peer.Faults, k))
			}
		}
	}
	fmt.Fprintf(&b, "\n| check | skiff |%s\n|---|---|%s\n", peerCol(r, " etcd |"), peerCol(r, "---|"))
	fmt.Fprintf(&b, "| linearizable (porcupine) | %v (%s, %d ops, %d unobserved unknown writes dropped) |%s\n", r.Linearizable, r.Check, r.Ops, r.DroppedUnknown,
		peerVal(r, func(p *PeerResult) string { return fmt.Sprintf("%v (%s, %d ops)", p.Linearizable, p.Check, p.Ops) }))
	fmt.Fprintf(&b, "| lost acknowledged writes | %d |%s\n", r.LostWrites, peerVal(r, func(p *PeerResult) string { return fmt.Sprint(p.LostWrites) }))
	fmt.Fprintf(&b, "| healthy after the run (one leader, every member, lag <= 100; every agent's Node Ready) | %v %s%s |%s\n", r.Healthy && len(r.NodesNotReady) == 0, r.HealthError,
		strings.Join(r.NodesNotReady, ", "), peerCol(r, " - |"))
	failed := 0
	for _, f := range r.Faults {
		if f.Error != "" {
			failed++
		}
	}
	fmt.Fprintf(&b, "| faults with errors | %d of %d |%s\n", failed, len(r.Faults), peerCol(r, " - |"))
	if d := r.Deployments; d != nil {
		fmt.Fprintf(&b, "| Deployments at desired ready replicas within %.0fs of the last fault | %v (%d, after %.1fs) %s |%s\n", d.BoundS, d.Converged, d.Count, d.AfterFaultMs/1000,
			strings.Join(first(d.NotConverged, 3), "; "), peerCol(r, " - |"))
	}
	if p := r.Pods; p != nil {
		fmt.Fprintf(&b, "| pods bound to two nodes | %d of %d seen |%s\n", len(p.DoubleBound), p.Seen, peerCol(r, " - |"))
		fmt.Fprintf(&b, "| pods left after their deletion | %d |%s\n", len(p.LeftAfterDeletion), peerCol(r, " - |"))
	}
	if cc := r.Containers; cc != nil {
		fmt.Fprintf(&b, "| real agents (%s): pods seen running a container, of pods bound there | %d of %d (%s), %d containers, %d restarts, %d samples |%s\n",
			strings.Join(cc.Agents, ", "), cc.PodsStarted, cc.PodsBound, perAgent(cc.PerAgent), cc.Containers, cc.Restarts, cc.Samples, peerCol(r, " - |"))
		fmt.Fprintf(&b, "| real agents: a pod's container run twice at once | %d |%s\n", len(cc.DoubleRuns), peerCol(r, " - |"))
		fmt.Fprintf(&b, "| real agents: a pod's container on a node it was not bound to | %d |%s\n", len(cc.WrongNode), peerCol(r, " - |"))
		fmt.Fprintf(&b, "| real agents: containers running after their pod's deletion + %.0fs | %d (longest run past a deletion: %.1fs) |%s\n",
			(podGrace + containerStopBound).Seconds(), len(cc.Leftovers), cc.MaxAfterDelete/1000, peerCol(r, " - |"))
	}
	if len(r.Verbs) > 0 {
		b.WriteString("\n| verb | ok | errors | ops/s | p50 ms | p99 ms | p999 ms |\n|---|---|---|---|---|---|---|\n")
		for _, v := range r.Verbs {
			fmt.Fprintf(&b, "| %s | %d | %d | %.1f | %.1f | %.1f | %.1f |\n", v.Verb, v.Ops, v.Errors, v.Rate, v.P50Ms, v.P99Ms, v.P999Ms)
		}
	}
	if p := r.Pods; p != nil {
		fmt.Fprintf(&b, "\nPod-rate pods, create sent to seen ready: p50 %.0f ms, p99 %.0f ms, p999 %.0f ms (%d never ready); of which create to seen bound: p50 %.0f ms, p99 %.0f ms.\n",
			p.StartupP50Ms, p.StartupP99Ms, p.StartupP999Ms, p.NeverReady, p.ScheduleP50Ms, p.ScheduleP99Ms)
	}
	if len(r.Resources) > 0 {
		b.WriteString("\n| server | peak RSS MiB | mean RSS MiB | CPU s | CPU % of a core |\n|---|---|---|---|---|\n")
		for _, s := range r.Resources {
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.1f | %.1f |\n", s.Name, s.PeakRSSMiB, s.MeanRSSMiB, s.CPUSeconds, s.CPUPercent)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "\nSkipped: %s\n", s)
	}
	if fl := r.Failures(); len(fl) > 0 {
		fmt.Fprintf(&b, "\n**FAILED:** %s\n", strings.Join(fl, "; "))
	} else {
		b.WriteString("\nAll checks passed.\n")
	}
	if r.explain != "" {
		b.WriteString("\n```\n" + r.explain + "```\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func peerCol(r *ChaosResult, s string) string {
	if r.Peer == nil {
		return ""
	}
	return s
}

func peerVal(r *ChaosResult, f func(*PeerResult) string) string {
	if r.Peer == nil {
		return ""
	}
	return " " + f(r.Peer) + " |"
}

// WriteFiles writes result.json, summary.md and timeline.svg under dir.
func (r *ChaosResult) WriteFiles(dir string) error {
	var md strings.Builder
	if err := r.WriteSummary(&md); err != nil {
		return err
	}
	if err := writeResultAndSummary(dir, r, md.String()); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "timeline.svg"))
	if err != nil {
		return err
	}
	if err := writeTimelineSVG(f, r.Timeline, r.Faults); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// explainHistory describes, for each key that failed, the end of its longest linearizable
// prefix: where to start reading the evidence.
func explainHistory(chk historyCheck) string {
	var b strings.Builder
	for _, part := range chk.Info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, lin := range part {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
		if len(longest) == 0 {
			continue
		}
		fmt.Fprintf(&b, "key %s: longest linearizable prefix %d ops, ending:\n", longest[0].Input.(regInput).Key, len(longest))
		for _, op := range longest[max(0, len(longest)-4):] {
			fmt.Fprintf(&b, "  [%.1fms..] c%d %s\n", float64(op.Call)/1e6, op.ClientId, registerModel.DescribeOperation(op.Input, op.Output))
		}
		if b.Len() > 4000 {
			break
		}
	}
	return b.String()
}
