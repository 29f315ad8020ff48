package apiserver

import (
	"context"
	"errors"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/raftstore"
)

// A claim is a value that must be unique across a resource, such as a Service's cluster IP
// or node port. Each is a store key under claimPrefix, created in the same transaction as
// the object that holds it and deleted with it, so two servers can never hand out the same
// value: the second create of the key fails, and with it the whole write (Kubernetes keeps
// a bitmap per range in etcd for the same purpose).
type claim struct {
	Key   string      // e.g. "services/clusterip/10.96.0.10"
	Field *field.Path // where the value sits, for errors
	Value string
	// Requested: the user asked for this value (a conflict is their error); otherwise it was
	// picked by the server, and a conflict means picking again.
	Requested bool
}

const claimPrefix = "/skiff/claims/"

// claimSet is the claims taken when a write began.
type claimSet map[string]bool

func (s *Server) takenClaims(ctx context.Context, prefix string) (claimSet, error) {
	taken := claimSet{}
	cont := ""
	for {
		res, err := s.cfg.Store.List(ctx, claimPrefix+prefix, raftstore.ListOptions{Limit: 10000, Continue: cont})
		if err != nil {
			return nil, err
		}
		for _, kv := range res.KVs {
			taken[strings.TrimPrefix(kv.Key, claimPrefix)] = true
		}
		if res.Continue == "" {
			return taken, nil
		}
		cont = res.Continue
	}
}

// claimOps turns the claims an object gains and loses into store operations: creates for
// the new ones, deletes (each conditioned on its revision) for the released ones that exist.
func (s *Server) claimOps(ctx context.Context, owner string, now, before []claim) ([]raftstore.Op, []claim, error) {
	had := map[string]bool{}
	for _, c := range before {
		had[c.Key] = true
	}
	keep := map[string]bool{}
	var ops []raftstore.Op
	var created []claim
	for _, c := range now {
		keep[c.Key] = true
		if !had[c.Key] {
			ops = append(ops, raftstore.Op{Kind: raftstore.OpCreate, Key: claimPrefix + c.Key, Value: []byte(owner)})
			created = append(created, c)
		}
	}
	for _, c := range before {
		if keep[c.Key] {
			continue
		}
		kv, err := s.cfg.Store.Get(ctx, claimPrefix+c.Key, raftstore.ReadOptions{})
		if errors.Is(err, raftstore.ErrNotFound) {
			continue // never claimed (an object older than claims): nothing to release
		}
		if err != nil {
			return nil, nil, err
		}
		if string(kv.Value) == owner {
			ops = append(ops, raftstore.Op{Kind: raftstore.OpDelete, Key: kv.Key, IfModRevision: kv.ModRevision})
		}
	}
	return ops, created, nil
}

// claimConflict finds the claim whose create failed in a transaction error, if any.
func claimConflict(err error, created []claim) (claim, bool) {
	var oe *raftstore.OpError
	if !errors.As(err, &oe) || !errors.Is(err, raftstore.ErrKeyExists) {
		return claim{}, false
	}
	for _, c := range created {
		if claimPrefix+c.Key == oe.Key {
			return c, true
		}
	}
	return claim{}, false
}

// Claimer gives a resource's unique values.
type Claimer interface {
	// Prefix is where the resource's claims live, e.g. "services/".
	Prefix() string
	// Assign fills in the values obj leaves empty (on update, keeping old's), picking ones
	// not taken, and checks those requested.
	Assign(obj, old runtime.Object, taken claimSet) field.ErrorList
	// Claims lists the values obj holds.
	Claims(obj runtime.Object) []claim
}

func claimsOf(rs *Resource, obj runtime.Object) []claim {
	if rs.Claims == nil || obj == nil {
		return nil
	}
	return rs.Claims.Claims(obj)
}

// requestedFrom marks the claims whose values were in the object as sent (before Assign).
func requestedFrom(rs *Resource, sent runtime.Object, claims []claim) []claim {
	asked := map[string]bool{}
	for _, c := range claimsOf(rs, sent) {
		asked[c.Key] = true
	}
	for i := range claims {
		claims[i].Requested = asked[claims[i].Key]
	}
	return claims
}

// alreadyAllocated is the error for a requested value another object holds.
func alreadyAllocated(c claim) *field.Error {
	what := "IP"
	if strings.Contains(c.Key, "nodeport") {
		what = "port"
	}
	return field.Invalid(c.Field, c.Value, "provided "+what+" is already allocated")
}
