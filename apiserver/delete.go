package apiserver

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/raftstore"
)

// gracefulPending: a pod marked for deletion with a grace period stays until its node
// confirms (deletes it again with grace 0).
func (rs *Resource) gracefulPending(obj runtime.Object) bool {
	if rs.Graceful == nil {
		return false
	}
	m, _ := meta.Accessor(obj)
	g := m.GetDeletionGracePeriodSeconds()
	return g != nil && *g > 0
}

// deleteOptions reads DeleteOptions from the body (kubectl sends one) or the query.
func (s *Server) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	if err := s.codecs.params.DecodeParameters(r.URL.Query(), coreV1, opts); err != nil {
		return nil, badRequest(err)
	}
	if r.ContentLength != 0 && r.Body != nil {
		data, err := s.readBody(r)
		if err != nil {
			return nil, err
		}
		if len(data) > 0 {
			dec, err := s.codecs.bodyDecoder(r, false)
			if err != nil {
				return nil, err
			}
			gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
			into := &metav1.DeleteOptions{}
			if _, _, err := dec.Decode(data, &gvk, into); err != nil {
				return nil, apierrors.NewBadRequest(err.Error())
			}
			opts = into
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	if opts.OrphanDependents != nil && opts.PropagationPolicy != nil {
		return nil, apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind("DeleteOptions").GroupKind(), "", field.ErrorList{
			field.Invalid(field.NewPath("propagationPolicy"), *opts.PropagationPolicy, "orphanDependents and deletionPropagation cannot be both set")})
	}
	if p := opts.PropagationPolicy; p != nil && *p != metav1.DeletePropagationOrphan && *p != metav1.DeletePropagationBackground && *p != metav1.DeletePropagationForeground {
		return nil, apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind("DeleteOptions").GroupKind(), "", field.ErrorList{
			field.NotSupported(field.NewPath("propagationPolicy"), *p, []string{string(metav1.DeletePropagationForeground), string(metav1.DeletePropagationBackground), string(metav1.DeletePropagationOrphan)})})
	}
	for _, d := range opts.DryRun {
		if d != "All" {
			return nil, apierrors.NewBadRequest("unsupported dry run directive " + strconv.Quote(d))
		}
	}
	return opts, nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, q *request) {
	opts, err := s.deleteOptions(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	obj, err := s.deleteObject(r.Context(), q, q.ri.Name, opts)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	s.writeObject(w, r, q, http.StatusOK, obj)
}

// deleteObject deletes at once, or marks the object for deletion when finalizers or a
// grace period hold it: deletionTimestamp is set and the object stays until they are done.
func (s *Server) deleteObject(ctx context.Context, q *request, name string, opts *metav1.DeleteOptions) (runtime.Object, error) {
	for attempt := 0; attempt < 16; attempt++ {
		// As in update: the first attempt reads the local replica, and only a successful
		// compare-and-swap may end it; anything else is decided on a linearizable read.
		optimistic := attempt == 0 && len(opts.DryRun) == 0 && q.rs.Claims == nil
		cur, rev, err := s.objs.get(ctx, q.rs, q.ns, name, optimistic)
		if optimistic && err != nil && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return nil, toStatusErrName(err, q, name)
		}
		m, _ := meta.Accessor(cur)
		if p := opts.Preconditions; p != nil {
			if optimistic && (p.UID != nil && *p.UID != m.GetUID() || p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion()) {
				continue
			}
			if p.UID != nil && *p.UID != m.GetUID() {
				return nil, apierrors.NewConflict(q.gr(), name, errors.New("the UID in the precondition does not match the UID in record; the object might have been deleted and then recreated"))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return nil, apierrors.NewConflict(q.gr(), name, errors.New("the ResourceVersion in the precondition does not match the ResourceVersion in record; the object might have been modified"))
			}
		}
		grace, graceful := int64(0), false
		if q.rs.Graceful != nil {
			grace, graceful = q.rs.Graceful(cur, opts)
		}
		upd := cur.DeepCopyObject()
		um, _ := meta.Accessor(upd)
		gcFin, finChanged := gcFinalizers(m.GetFinalizers(), opts)
		um.SetFinalizers(gcFin)
		finalizers := allFinalizers(q.rs, upd)
		if len(opts.DryRun) > 0 {
			return cur, nil
		}
		if len(finalizers) == 0 && (!graceful || grace == 0) {
			release, _, err := s.claimOps(ctx, s.objs.key(q.rs, q.ns, name), nil, claimsOf(q.rs, cur))
			if err != nil {
				return nil, toStatusErrName(err, q, name)
			}
			if err := s.objs.delete(ctx, q.rs, q.ns, name, rev, release...); err != nil {
				if errors.Is(err, raftstore.ErrConflict) {
					continue
				}
				return nil, toStatusErrName(err, q, name)
			}
			return cur, nil
		}
		// Mark for deletion. A repeated delete may shorten the grace period or change the
		// propagation policy; otherwise it changes nothing.
		now := metav1.NewTime(s.cfg.Now())
		old := um.GetDeletionGracePeriodSeconds()
		shorter := graceful && (old == nil || *old > grace)
		switch {
		case um.GetDeletionTimestamp() != nil && !shorter && !finChanged:
			if optimistic {
				continue
			}
			return cur, nil
		case um.GetDeletionTimestamp() != nil && !shorter:
			// Only the finalizers change; the deletion keeps its timestamp.
		case graceful:
			deadline := metav1.NewTime(now.Add(secondsDuration(grace)))
			um.SetDeletionTimestamp(&deadline)
			um.SetDeletionGracePeriodSeconds(&grace)
		default:
			um.SetDeletionTimestamp(&now)
			zero := int64(0)
			um.SetDeletionGracePeriodSeconds(&zero)
		}
		if q.rs.GVR.Resource == "namespaces" {
			markTerminating(upd)
		}
		out, err := s.objs.update(ctx, q.rs, upd, rev)
		if errors.Is(err, raftstore.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, toStatusErrName(err, q, name)
		}
		return out, nil
	}
	return nil, apierrors.NewConflict(q.gr(), name, errors.New("too many concurrent changes"))
}

// gcFinalizers applies a delete's propagation policy as kube-apiserver does: Orphan (or
// orphanDependents) puts the "orphan" finalizer on the object and Foreground
// "foregroundDeletion"; the garbage collector then orphans or deletes the dependents and
// removes it. Background, the default, takes both off. Without a policy, a finalizer already
// on the object decides. It reports whether the finalizers change.
func gcFinalizers(cur []string, opts *metav1.DeleteOptions) ([]string, bool) {
	orphan, foreground := slices.Contains(cur, metav1.FinalizerOrphanDependents), slices.Contains(cur, metav1.FinalizerDeleteDependents)
	switch {
	case opts.OrphanDependents != nil:
		orphan, foreground = *opts.OrphanDependents, false
	case opts.PropagationPolicy != nil:
		orphan = *opts.PropagationPolicy == metav1.DeletePropagationOrphan
		foreground = *opts.PropagationPolicy == metav1.DeletePropagationForeground
	}
	out := make([]string, 0, len(cur)+1)
	for _, f := range cur {
		if f != metav1.FinalizerOrphanDependents && f != metav1.FinalizerDeleteDependents {
			out = append(out, f)
		}
	}
	if orphan {
		out = append(out, metav1.FinalizerOrphanDependents)
	}
	if foreground {
		out = append(out, metav1.FinalizerDeleteDependents)
	}
	changed := len(out) != len(cur)
	for _, f := range out {
		changed = changed || !slices.Contains(cur, f)
	}
	if len(out) == 0 && len(cur) == 0 {
		return cur, false
	}
	return out, changed
}

func (s *Server) handleDeleteCollection(w http.ResponseWriter, r *http.Request, q *request) {
	lopts := metav1.ListOptions{}
	if err := s.codecs.params.DecodeParameters(r.URL.Query(), coreV1, &lopts); err != nil {
		writeError(w, badRequest(err), q.gr(), "")
		return
	}
	dopts, err := s.deleteOptions(r)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	lopts.Limit, lopts.Continue = 0, ""
	list, err := s.listObjects(r.Context(), q, &lopts)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	items, _ := meta.ExtractList(list)
	var deleted []runtime.Object
	for _, it := range items {
		m, _ := meta.Accessor(it)
		qq := *q
		qq.ns = m.GetNamespace()
		out, err := s.deleteObject(r.Context(), &qq, m.GetName(), dopts)
		if err != nil && !isNotFound(err) {
			writeError(w, err, q.gr(), m.GetName())
			return
		}
		if out != nil {
			deleted = append(deleted, out)
		}
	}
	_ = meta.SetList(list, deleted)
	s.writeObject(w, r, q, http.StatusOK, list)
}
