package bench

import (
	"encoding/json"
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
	Seed             uint64        `json:"seed"`
	Duration         string        `json:"duration"`
	Started          time.Time     `json:"started"`
	Linearizable     bool          `json:"linearizable"`
	Check            string        `json:"check"` // porcupine's verdict: Ok, Illegal or Unknown (timed out)
	Ops              int           `json:"ops_checked"`
	DroppedUnknown   int           `json:"dropped_unobserved_unknown_writes"`
	LostWrites       int           `json:"lost_writes"`
	LostWriteSamples []string      `json:"lost_write_samples,omitempty"`
	Healthy          bool          `json:"healthy"`
	HealthError      string        `json:"health_error,omitempty"`
	FinalReadError   string        `json:"final_read_error,omitempty"`
	Faults           []FaultResult `json:"faults"`
	Skipped          []string      `json:"skipped,omitempty"`
	Peer             *PeerResult   `json:"peer,omitempty"`
	Timeline         []point       `json:"timeline"`
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
	if r.Peer != nil && (!r.Peer.Linearizable || r.Peer.LostWrites > 0) {
		out = append(out, fmt.Sprintf("etcd peer: linearizable=%v lost=%d", r.Peer.Linearizable, r.Peer.LostWrites))
	}
	return out
}

// figures sums up one kind of fault of one system: count, median and p99 unavailability,
// median election time.
type figures struct {
	n                    int
	med, p99, elect, max time.Duration
}

func summarize(fs []FaultResult, kind string) figures {
	var un, el []time.Duration
	for _, f := range fs {
		if f.Kind != kind || !f.Applied {
			continue
		}
		un = append(un, time.Duration(f.UnavailableMs*float64(time.Millisecond)))
		if f.ElectionMs > 0 {
			el = append(el, time.Duration(f.ElectionMs*float64(time.Millisecond)))
		}
	}
	return figures{n: len(un), med: percentile(un, 0.5), p99: percentile(un, 0.99), max: percentile(un, 1), elect: percentile(el, 0.5)}
}

// WriteSummary writes the markdown table: per fault kind, skiff's figures and, for leader
// kills, etcd's beside them; then the checks.
func (r *ChaosResult) WriteSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# skiff chaos run (seed %d, %s)\n\n", r.Seed, r.Duration)
	b.WriteString("Write unavailability: per fault, the worst gap between the last acknowledged write before it and the first after it among the servers the fault did not target (all servers for restart-all).\n\n")
	b.WriteString("| system | fault | count | unavailable median ms | p99 ms | max ms | election median ms |\n|---|---|---|---|---|---|---|\n")
	row := func(sys, kind string, f figures) {
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %.0f | %.0f | %.0f |\n", sys, kind, f.n, ms(f.med), ms(f.p99), ms(f.max), ms(f.elect))
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
	fmt.Fprintf(&b, "| healthy after the run | %v %s |%s\n", r.Healthy, r.HealthError, peerCol(r, " - |"))
	failed := 0
	for _, f := range r.Faults {
		if f.Error != "" {
			failed++
		}
	}
	fmt.Fprintf(&b, "| faults with errors | %d of %d |%s\n", failed, len(r.Faults), peerCol(r, " - |"))
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	if err := r.WriteSummary(&md); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md.String()), 0o644); err != nil {
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
