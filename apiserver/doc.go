// Package apiserver is the only door to skiff's state: it serves the Kubernetes REST API
// (discovery, OpenAPI, CRUD, patch, watch, tables) over raftstore so that unmodified kubectl
// and client-go work against it. Resources are registered once (registry.go) and served by
// generic handlers; authentication, authorization and admission run in front of them.
//
// Objects are stored as Kubernetes protobuf (apimachinery's serializer, as kube-apiserver
// stores them in etcd): two to five times smaller and faster to decode than JSON, which
// matters for lists and watch fan-out. metadata.resourceVersion is not stored; it is the
// key's ModRevision, filled in on every read.
package apiserver
