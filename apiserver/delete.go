package apiserver

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

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
		cur, rev, err := s.objs.get(ctx, q.rs, q.ns, name, false)
		if err != nil {
			return nil, toStatusErrName(err, q, name)
		}
		m, _ := meta.Accessor(cur)
		if p := opts.Preconditions; p != nil {
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
		finalizers := allFinalizers(q.rs, cur)
		if len(opts.DryRun) > 0 {
			return cur, nil
		}
		if len(finalizers) == 0 && (!graceful || grace == 0) {
			if err := s.objs.delete(ctx, q.rs, q.ns, name, rev); err != nil {
				if errors.Is(err, raftstore.ErrConflict) {
					continue
				}
				return nil, toStatusErrName(err, q, name)
			}
			return cur, nil
		}
		// Mark for deletion; a repeated delete may only shorten the grace period.
		upd := cur.DeepCopyObject()
		um, _ := meta.Accessor(upd)
		if old := um.GetDeletionGracePeriodSeconds(); um.GetDeletionTimestamp() != nil && (!graceful || (old != nil && *old <= grace)) {
			return cur, nil
		}
		now := metav1.NewTime(s.cfg.Now())
		if graceful {
			deadline := metav1.NewTime(now.Add(secondsDuration(grace)))
			um.SetDeletionTimestamp(&deadline)
			um.SetDeletionGracePeriodSeconds(&grace)
		} else {
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
