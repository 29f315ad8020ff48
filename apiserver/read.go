package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/raftstore"
)

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, q *request) {
	opts := metav1.GetOptions{}
	if err := s.codecs.params.DecodeParameters(r.URL.Query(), coreV1, &opts); err != nil {
		writeError(w, badRequest(err), q.gr(), q.ri.Name)
		return
	}
	obj, err := s.getObject(r.Context(), q, opts.ResourceVersion)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	s.writeObject(w, r, q, http.StatusOK, obj)
}

// getObject reads with Kubernetes' resourceVersion semantics: "" linearizable, "0" from
// this node's replica, N not older than N.
func (s *Server) getObject(ctx context.Context, q *request, rv string) (runtime.Object, error) {
	stale := false
	if rv != "" {
		n, err := parseRV(rv)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			if err := s.waitRevision(ctx, n); err != nil {
				return nil, err
			}
		}
		stale = true
	}
	obj, _, err := s.objs.get(ctx, q.rs, q.ns, q.ri.Name, stale)
	if err != nil {
		return nil, toStatusErr(err, q)
	}
	return obj, nil
}

// waitRevision waits until this node's replica has applied rev.
func (s *Server) waitRevision(ctx context.Context, rev int64) error {
	return s.cfg.Store.WaitRevision(ctx, rev)
}

func parseRV(rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version %q", rv))
	}
	return n, nil
}

func toStatusErr(err error, q *request) error {
	st := toStatus(err, q.gr(), q.ri.Name)
	return &apierrors.StatusError{ErrStatus: *st}
}

// selector is a list's or watch's label and field filter.
type selector struct {
	labels labels.Selector
	fields fields.Selector
}

// everything says whether the selector picks every object.
func (sel *selector) everything() bool { return sel.labels.Empty() && sel.fields.Empty() }

// picks says whether an object with these labels and selectable fields is selected.
func (sel *selector) picks(l labels.Labels, f fields.Fields) bool {
	return sel.labels.Matches(l) && sel.fields.Matches(f)
}

func (s *Server) parseSelector(rs *Resource, opts *metav1.ListOptions) (*selector, error) {
	sel := &selector{labels: labels.Everything(), fields: fields.Everything()}
	var err error
	if opts.LabelSelector != "" {
		if sel.labels, err = labels.Parse(opts.LabelSelector); err != nil {
			return nil, apierrors.NewBadRequest("unable to parse requirement: " + err.Error())
		}
	}
	if opts.FieldSelector != "" {
		if sel.fields, err = fields.ParseSelector(opts.FieldSelector); err != nil {
			return nil, apierrors.NewBadRequest("invalid field selector: " + err.Error())
		}
		known := s.fieldSet(rs, rs.newObject(s.codecs))
		for _, req := range sel.fields.Requirements() {
			if _, ok := known[req.Field]; !ok {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
	}
	return sel, nil
}

func (rs *Resource) newObject(c *codecs) runtime.Object {
	obj, _ := c.scheme.New(rs.gvk())
	return obj
}

func (s *Server) fieldSet(rs *Resource, obj runtime.Object) fields.Set {
	m, _ := meta.Accessor(obj)
	set := fields.Set{"metadata.name": m.GetName()}
	if rs.Namespaced {
		set["metadata.namespace"] = m.GetNamespace()
	}
	if rs.Fields != nil {
		for k, v := range rs.Fields(obj) {
			set[k] = v
		}
	}
	return set
}

func (s *Server) matches(rs *Resource, sel *selector, obj runtime.Object) bool {
	if sel.everything() {
		return true
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	return sel.picks(labels.Set(m.GetLabels()), s.fieldSet(rs, obj))
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, q *request) {
	opts := metav1.ListOptions{}
	if err := s.codecs.params.DecodeParameters(r.URL.Query(), coreV1, &opts); err != nil {
		writeError(w, badRequest(err), q.gr(), "")
		return
	}
	if sel, err := s.parseSelector(q.rs, &opts); err == nil {
		if mt, err := s.mediaType(r, q); err == nil && canListRaw(mt) {
			s.handleRawList(w, r, q, &opts, sel)
			return
		} else if err == nil && mt.as.Kind == kindPartialList && metadataOnly(mt, sel) {
			s.handlePartialList(w, r, q, &opts, sel, mt)
			return
		} else if err == nil && canStreamJSON(mt) {
			s.serveJSONList(w, r, q, &opts, sel, mt)
			return
		}
	}
	list, err := s.listObjects(r.Context(), q, &opts)
	if err != nil {
		writeError(w, err, q.gr(), "")
		return
	}
	s.writeObject(w, r, q, http.StatusOK, list)
}

// listObjects reads a page of matching objects into the kind's List type.
func (s *Server) listObjects(ctx context.Context, q *request, opts *metav1.ListOptions) (runtime.Object, error) {
	sel, err := s.parseSelector(q.rs, opts)
	if err != nil {
		return nil, err
	}
	var items []runtime.Object
	page, err := s.listPage(ctx, q, opts, func(kv raftstore.KV) (bool, error) {
		ok, obj, err := s.selects(q.rs, sel, kv)
		if err != nil || !ok {
			return false, err
		}
		if obj == nil {
			if obj, err = s.objs.decode(kv); err != nil {
				return false, err
			}
		}
		items = append(items, obj)
		return true, nil
	}, sel.everything(), s.skipUnselected(q.rs, sel))
	if err != nil {
		return nil, err
	}
	list, err := s.codecs.scheme.New(q.rs.GVR.GroupVersion().WithKind(q.rs.Kind + "List"))
	if err != nil {
		return nil, err
	}
	if err := meta.SetList(list, items); err != nil {
		return nil, err
	}
	lm, _ := meta.ListAccessor(list)
	lm.SetResourceVersion(strconv.FormatInt(page.rev, 10))
	lm.SetContinue(page.cont)
	lm.SetRemainingItemCount(page.remaining)
	return list, nil
}

// listKVs reads what listObjects would list, undecoded (the caller decodes), with the
// page's metadata: only objects sel picks, decided from the selector cache (or a decode on
// a miss, whose object is dropped so that the list pins only stored values).
func (s *Server) listKVs(ctx context.Context, q *request, opts *metav1.ListOptions, sel *selector) ([]raftstore.KV, listPageInfo, error) {
	var kvs []raftstore.KV
	page, err := s.listPage(ctx, q, opts, func(kv raftstore.KV) (bool, error) {
		if ok, _, err := s.selects(q.rs, sel, kv); err != nil || !ok {
			return false, err
		}
		kvs = append(kvs, kv)
		return true, nil
	}, sel.everything(), s.skipUnselected(q.rs, sel))
	return kvs, page, err
}

// listPageInfo is a list's metadata.
type listPageInfo struct {
	rev       int64
	cont      string
	remaining *int64
}

// listPage reads one page from the store at the revision the options ask for, handing each
// key to take (which says whether it counted toward the page).
func (s *Server) listPage(ctx context.Context, q *request, opts *metav1.ListOptions, take func(raftstore.KV) (bool, error), unfiltered bool, skip func(string, int64) bool) (listPageInfo, error) {
	var page listPageInfo
	lo := raftstore.ListOptions{Limit: int(opts.Limit), Continue: opts.Continue, Skip: skip}
	if opts.Limit < 0 {
		return page, apierrors.NewBadRequest("limit must not be negative")
	}
	switch {
	case opts.Continue != "" && opts.ResourceVersion != "" && opts.ResourceVersion != "0":
		return page, apierrors.NewBadRequest("specifying resource version is not allowed when using continue")
	case opts.Continue != "":
	case opts.ResourceVersion == "":
	case opts.ResourceVersion == "0":
		lo.Stale = true
	default:
		n, err := parseRV(opts.ResourceVersion)
		if err != nil {
			return page, err
		}
		if opts.ResourceVersionMatch == metav1.ResourceVersionMatchExact || (opts.ResourceVersionMatch == "" && opts.Limit > 0) {
			lo.Revision = n
		} else {
			if err := s.waitRevision(ctx, n); err != nil {
				return page, err
			}
			lo.Stale = true
		}
	}
	prefix := s.objs.prefix(q.rs, q.ns)
	taken := int64(0)
	for {
		res, err := s.cfg.Store.List(ctx, prefix, lo)
		if err != nil {
			return page, toStatusErr(err, q)
		}
		page.rev = res.Revision
		for _, kv := range res.KVs {
			ok, err := take(kv)
			if err != nil {
				return page, err
			}
			if ok {
				taken++
			}
		}
		page.cont = res.Continue
		if page.cont != "" && unfiltered {
			n := int64(res.Remaining)
			page.remaining = &n
		}
		// With a selector a page may come up short; read on until it is full, as the
		// Kubernetes storage layer does.
		if page.cont == "" || opts.Limit == 0 || taken >= opts.Limit {
			return page, nil
		}
		lo = raftstore.ListOptions{Limit: int(opts.Limit - taken), Continue: page.cont, Skip: skip}
	}
}
