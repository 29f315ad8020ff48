// Package cluster forms and heals skiff's control plane and wires a server together: the
// cluster's keys and certificates, gossip membership, bootstrap-expect, the TLS layer under
// Raft, and a server process that runs raftstore, the apiserver and, while it leads, the
// controllers.
package cluster
