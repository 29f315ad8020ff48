package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ErrNoNodesAvailable is kube-scheduler's error when the cluster has no nodes at all.
var ErrNoNodesAvailable = errors.New("no nodes available to schedule pods")

// FitError says why no node fits a pod, in kube-scheduler's words.
type FitError struct {
	NumAllNodes int
	// Reasons counts the nodes that gave each reason.
	Reasons map[string]int
}

// Error is "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable.":
// each reason prefixed by its count, sorted as strings. Skiff runs no preemption, so the
// ". preemption: ..." tail kube-scheduler adds is absent.
func (f *FitError) Error() string {
	var parts []string
	for r, n := range f.Reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available:", f.NumAllNodes)
	if len(parts) > 0 {
		msg += " " + strings.Join(parts, ", ") + "."
	}
	return msg
}

// numFeasibleNodesToFind is kube-scheduler's adaptive percentageOfNodesToScore: all nodes
// up to 100, then 50% minus 1% per 125 nodes, never below 5% or 100 nodes.
func numFeasibleNodesToFind(all int) int {
	const minFeasible, minPercent = 100, 5
	if all < minFeasible {
		return all
	}
	pct := 50 - all/125
	if pct < minPercent {
		pct = minPercent
	}
	n := all * pct / 100
	if n < minFeasible {
		return minFeasible
	}
	return n
}

// Decision is the outcome of scheduling one pod.
type Decision struct {
	Node string
	// Next is where the following search should start, so that successive pods look at
	// different nodes first when only a share of them is searched.
	Next int
}

// Schedule picks a node for pod among nodes (the feasible node with the highest score, ties
// broken at random), searching from index start. It returns ErrNoNodesAvailable or a
// *FitError when no node fits.
func Schedule(strategy Scoring, pod *corev1.Pod, nodes []*NodeInfo, start int, rng *rand.Rand) (Decision, error) {
	if len(nodes) == 0 {
		return Decision{}, ErrNoNodesAvailable
	}
	want := numFeasibleNodesToFind(len(nodes))
	if start < 0 || start >= len(nodes) {
		start = 0
	}
	pi := newPodInfo(pod)
	var feasible []*NodeInfo
	fit := &FitError{NumAllNodes: len(nodes), Reasons: map[string]int{}}
	checked := 0
	for ; checked < len(nodes) && len(feasible) < want; checked++ {
		ni := nodes[(start+checked)%len(nodes)]
		reasons := filterInfo(pi, ni)
		if len(reasons) == 0 {
			feasible = append(feasible, ni)
			continue
		}
		for _, r := range reasons {
			fit.Reasons[r]++
		}
	}
	next := (start + checked) % len(nodes)
	if len(feasible) == 0 {
		return Decision{Next: next}, fit
	}
	scores := scoreInfo(strategy, pi, feasible)
	best, ties := 0, 1
	for i := 1; i < len(scores); i++ {
		switch {
		case scores[i] > scores[best]:
			best, ties = i, 1
		case scores[i] == scores[best]:
			// Reservoir sampling: each tied node is kept with equal probability.
			ties++
			if rng != nil && rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return Decision{Node: feasible[best].Node.Name, Next: next}, nil
}
