// Package replicaset is the ReplicaSet controller: it keeps spec.replicas pods matching a
// ReplicaSet's selector, adopting orphans and releasing pods that stop matching, with
// expectations so that a lagging cache never causes extra pods, deleting the least useful
// pods first, and reporting status. The decisions are pure functions in plan.go.
package replicaset
