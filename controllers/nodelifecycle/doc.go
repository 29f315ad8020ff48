// Package nodelifecycle is the node lifecycle controller: it watches node Leases (and the
// Ready heartbeat), marks a node silent for longer than the grace period Unknown, keeps the
// not-ready/unreachable/unschedulable taints in line with the node's state, marks the pods
// of an unhealthy node not ready, and evicts pods from NoExecute-tainted nodes once their
// toleration runs out. Decisions are pure functions in decide.go.
package nodelifecycle
