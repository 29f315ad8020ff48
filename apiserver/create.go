package apiserver

import (
	"context"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// writeOptions are the query parameters shared by create, update and patch.
type writeOptions struct {
	dryRun          bool
	fieldManager    string
	fieldValidation string // Strict, Warn, Ignore
	applied         bool   // server-side apply already tracked managedFields
	// readsOld says the update function only reads the current object (a patch): update
	// then hands it the object it read instead of a deep copy.
	readsOld bool
}

func parseWriteOptions(r *http.Request) (writeOptions, error) {
	q := r.URL.Query()
	o := writeOptions{fieldManager: q.Get("fieldManager"), fieldValidation: q.Get("fieldValidation")}
	for _, d := range q["dryRun"] {
		if d != "All" {
			return o, apierrors.NewBadRequest(fmt.Sprintf("unsupported dry run directive %q", d))
		}
		o.dryRun = true
	}
	switch o.fieldValidation {
	case "", "Ignore", "Warn", "Strict":
	default:
		return o, apierrors.NewBadRequest(fmt.Sprintf("fieldValidation must be one of Ignore, Warn or Strict, not %q", o.fieldValidation))
	}
	if o.fieldManager == "" {
		o.fieldManager = managerFromUserAgent(r.UserAgent())
	}
	return o, nil
}

// decodeBody decodes a request body into the resource's kind; the kind in the body must
// be the resource's. Strict decoding (fieldValidation=Strict) rejects unknown fields with
// 400 as kube-apiserver does; Warn turns them into warnings.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, q *request, data []byte, wo writeOptions) (runtime.Object, error) {
	dec, err := s.codecs.bodyDecoder(r, wo.fieldValidation == "Strict" || wo.fieldValidation == "Warn")
	if err != nil {
		return nil, err
	}
	into := q.rs.newObject(s.codecs)
	gvk := q.rs.gvk()
	obj, got, err := dec.Decode(data, &gvk, into)
	if sde, ok := runtime.AsStrictDecodingError(err); ok && obj != nil {
		if wo.fieldValidation == "Warn" {
			for _, e := range sde.Errors() {
				w.Header().Add("Warning", `299 - "`+e.Error()+`"`)
			}
			err = nil
		} else {
			return nil, apierrors.NewBadRequest(err.Error())
		}
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if got != nil && (got.Kind != gvk.Kind || got.GroupVersion() != gvk.GroupVersion()) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body of the request was of kind %q (%s), expected %q (%s)", got.Kind, got.GroupVersion(), gvk.Kind, gvk.GroupVersion()))
	}
	return obj, nil
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, q *request) {
	wo, err := parseWriteOptions(r)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	data, err := s.readBody(r)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	obj, err := s.decodeBody(w, r, q, data, wo)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	out, err := s.create(r.Context(), q, obj, wo)
	if err != nil {
		writeError(w, err, q.gr(), nameOf(obj))
		return
	}
	s.writeObject(w, r, q, http.StatusCreated, out)
}

func nameOf(obj runtime.Object) string {
	if m, err := meta.Accessor(obj); err == nil {
		return m.GetName()
	}
	return ""
}

// create admits and writes a new object.
func (s *Server) create(ctx context.Context, q *request, obj runtime.Object, wo writeOptions) (runtime.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if q.rs.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(q.ns)
		}
		if m.GetNamespace() != q.ns {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	}
	if m.GetName() == "" && m.GetGenerateName() == "" {
		return nil, invalid(q.rs, "", field.ErrorList{field.Required(field.NewPath("metadata", "name"), "name or generateName is required")})
	}
	if err := s.admitNode(ctx, q, obj); err != nil {
		return nil, err
	}
	if q.rs.Namespaced {
		if err := s.namespaceAccepts(ctx, q.ns); err != nil {
			return nil, err
		}
	}
	s.prepareCreate(q.rs, obj, s.cfg.Now())
	if q.rs.Default != nil {
		q.rs.Default(obj)
	}
	s.admitServiceAccount(ctx, q, obj)
	name, owner := m.GetName(), s.objs.key(q.rs, m.GetNamespace(), m.GetName())
	base := obj
	for attempt := 0; ; attempt++ {
		obj := base
		var claims []claim
		if q.rs.Claims != nil {
			// Values the server picks are picked again if another server took the same one
			// between our read of the claims and our write.
			obj = base.DeepCopyObject()
			taken, err := s.takenClaims(ctx, q.rs.Claims.Prefix())
			if err != nil {
				return nil, toStatusErrName(err, q, name)
			}
			if errs := q.rs.Claims.Assign(obj, nil, taken); len(errs) > 0 {
				return nil, invalid(q.rs, name, errs)
			}
			claims = requestedFrom(q.rs, base, q.rs.Claims.Claims(obj))
		}
		if errs := s.validate(q.rs, obj, nil); len(errs) > 0 {
			return nil, invalid(q.rs, name, errs)
		}
		if !wo.applied {
			obj = s.manageFields(q, nil, obj, wo.fieldManager)
		}
		if wo.dryRun {
			return obj, nil
		}
		ops, created, err := s.claimOps(ctx, owner, claims, nil)
		if err != nil {
			return nil, toStatusErrName(err, q, name)
		}
		out, err := s.objs.create(ctx, q.rs, obj, ops...)
		if c, ok := claimConflict(err, created); ok {
			if c.Requested || attempt >= 8 {
				return nil, invalid(q.rs, name, field.ErrorList{alreadyAllocated(c)})
			}
			continue
		}
		if err != nil {
			return nil, toStatusErrName(err, q, name)
		}
		return out, nil
	}
}

func toStatusErrName(err error, q *request, name string) error {
	st := toStatus(err, q.gr(), name)
	return &apierrors.StatusError{ErrStatus: *st}
}

func invalid(rs *Resource, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(rs.gvk().GroupKind(), name, errs)
}
