package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/raftstore"
)

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, q *request) {
	wo, err := parseWriteOptions(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	data, err := s.readBody(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	obj, err := s.decodeBody(w, r, q, data, wo)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	m, _ := meta.Accessor(obj)
	if m.GetName() != q.ri.Name {
		writeError(w, apierrors.NewBadRequest("the name of the object ("+m.GetName()+") does not match the name on the URL ("+q.ri.Name+")"), q.gr(), q.ri.Name)
		return
	}
	if q.rs.Namespaced && m.GetNamespace() != "" && m.GetNamespace() != q.ns {
		writeError(w, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"), q.gr(), q.ri.Name)
		return
	}
	wantRV, wantUID := m.GetResourceVersion(), m.GetUID()
	out, _, err := s.update(r.Context(), q, wo, func(old runtime.Object, rev int64) (runtime.Object, error) {
		// A uid in the body is a precondition, as kube-apiserver's (409, not the 422 a
		// patch that changes the uid gets from validation).
		if om, _ := meta.Accessor(old); wantUID != "" && wantUID != om.GetUID() {
			return nil, apierrors.NewConflict(q.gr(), q.ri.Name, fmt.Errorf("Precondition failed: UID in precondition: %s, UID in object meta: %s", wantUID, om.GetUID()))
		}
		if wantRV != "" {
			n, err := parseRV(wantRV)
			if err != nil {
				return nil, err
			}
			if n != rev {
				return nil, errConflict(q)
			}
		}
		cp := obj.DeepCopyObject()
		cm, _ := meta.Accessor(cp)
		cm.SetNamespace(q.ns)
		if wantRV == "" {
			// An unconditional update (kubectl replace of a file without a
			// resourceVersion) applies to whatever is stored, as every built-in
			// strategy's AllowUnconditionalUpdate allows.
			setRV(cp, rev)
		}
		return cp, nil
	})
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	s.writeObject(w, r, q, http.StatusOK, out)
}

func errConflict(q *request) error {
	return toStatusErr(raftstore.ErrConflict, q)
}

// updateFunc builds the new object from the current one (a copy the function may keep,
// unless writeOptions.readsOld says it only reads it).
type updateFunc func(old runtime.Object, rev int64) (runtime.Object, error)

// update is a guaranteed update: read, apply fn, admit, compare-and-swap on the revision
// read; on a concurrent change it starts again (fn decides about stale preconditions).
// It reports whether anything was written.
//
// The first attempt reads this server's replica without a ReadIndex round trip to the
// leader, as kube-apiserver's GuaranteedUpdate starts from its watch cache: the
// compare-and-swap makes a write from a stale read fail rather than lose anything. Only a
// successful swap may end that attempt; any other outcome (not found, a precondition or
// validation failure, a no-op) could be the replica's lag speaking, so it is decided again
// on a linearizable read.
func (s *Server) update(ctx context.Context, q *request, wo writeOptions, fn updateFunc) (runtime.Object, bool, error) {
	for attempt := 0; ; attempt++ {
		optimistic := attempt == 0 && !wo.dryRun && q.rs.Claims == nil
		var old runtime.Object
		var rev int64
		var err error
		if p := q.ri.read; optimistic && p != nil && p.rs == q.rs && p.obj != nil {
			// The authorizer's read of this replica, a moment ago: the same read this
			// attempt would make (the compare-and-swap decides either way).
			old, rev = p.obj, p.rev
		} else {
			old, rev, err = s.objs.get(ctx, q.rs, q.ns, q.ri.Name, optimistic)
		}
		if optimistic && err != nil && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return nil, false, toStatusErr(err, q)
		}
		cur := old
		if !wo.readsOld {
			cur = old.DeepCopyObject()
		}
		obj, err := fn(cur, rev)
		if optimistic && err != nil {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		prepareUpdate(q.rs, q.ri.Subresource, obj, old)
		if q.rs.Default != nil {
			q.rs.Default(obj)
		}
		owner := s.objs.key(q.rs, q.ns, q.ri.Name)
		oldClaims := claimsOf(q.rs, old)
		var claims []claim
		if q.rs.Claims != nil {
			taken, err := s.takenClaims(ctx, q.rs.Claims.Prefix())
			if err != nil {
				return nil, false, toStatusErr(err, q)
			}
			for _, c := range oldClaims {
				delete(taken, c.Key) // the object's own values are not taken from it
			}
			sent := obj.DeepCopyObject()
			if errs := q.rs.Claims.Assign(obj, old, taken); len(errs) > 0 {
				return nil, false, invalid(q.rs, q.ri.Name, errs)
			}
			claims = requestedFrom(q.rs, sent, q.rs.Claims.Claims(obj))
		}
		if errs := s.validate(q.rs, obj, validationBase(q, old, obj)); len(errs) > 0 {
			if optimistic {
				continue
			}
			return nil, false, invalid(q.rs, q.ri.Name, errs)
		}
		if !wo.applied && q.ri.Subresource != "binding" {
			// pods/binding writes the pod in storage directly, as kube-apiserver's
			// BindingREST does: the pod's managedFields do not change (and the
			// field manager's typed diff was most of a bind's CPU).
			obj = s.manageFields(q, old, obj, wo.fieldManager)
		}
		setRV(obj, rev)
		if apiequality.Semantic.DeepEqual(obj, old) {
			if optimistic {
				continue
			}
			return old, false, nil // a no-op update writes nothing and keeps the revision
		}
		if wo.dryRun {
			return obj, false, nil
		}
		m, _ := meta.Accessor(obj)
		if m.GetDeletionTimestamp() != nil && len(allFinalizers(q.rs, obj)) == 0 && !q.rs.gracefulPending(obj) {
			// The last finalizer is gone: the deletion completes, releasing its claims.
			release, _, err := s.claimOps(ctx, owner, nil, oldClaims)
			if err != nil {
				return nil, false, toStatusErr(err, q)
			}
			if err := s.objs.delete(ctx, q.rs, q.ns, q.ri.Name, rev, release...); err != nil {
				if errors.Is(err, raftstore.ErrConflict) {
					continue
				}
				return nil, false, toStatusErr(err, q)
			}
			return obj, true, nil
		}
		ops, created, err := s.claimOps(ctx, owner, claims, oldClaims)
		if err != nil {
			return nil, false, toStatusErr(err, q)
		}
		out, err := s.objs.update(ctx, q.rs, obj, rev, ops...)
		if c, ok := claimConflict(err, created); ok {
			if c.Requested || attempt >= 8 {
				return nil, false, invalid(q.rs, q.ri.Name, field.ErrorList{alreadyAllocated(c)})
			}
			continue
		}
		if errors.Is(err, raftstore.ErrConflict) && attempt < 16 {
			continue
		}
		if err != nil {
			return nil, false, toStatusErr(err, q)
		}
		return out, true, nil
	}
}
