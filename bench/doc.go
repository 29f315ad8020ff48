// Package bench drives skiff from the outside and measures it: load generators, the
// processes under test, and reports.
//
// The store benchmark (RunStore) starts raftstore as three store-node processes and etcd as
// three real etcd members, runs the same workloads against each through their client APIs,
// and reports throughput and latency side by side. It imports no skiff internals: it speaks
// to store nodes over their small HTTP API, as any client would.
package bench
