package apiserver

import (
	"errors"
	"io"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// request is one resource request after routing: the registration, the parsed path, and
// the negotiated response format.
type request struct {
	rs   *Resource
	ri   *requestInfo
	ns   string
	user *UserInfo
	// mt is the response format, negotiated before any work for the main resource and
	// its status (a 406 changes nothing, as upstream); nil until then.
	mt *mediaType
}

// mediaType negotiates the response format once per request.
func (s *Server) mediaType(r *http.Request, q *request) (mediaType, error) {
	if q.mt == nil {
		mt, err := s.codecs.negotiate(r)
		if err != nil {
			return mediaType{}, err
		}
		q.mt = &mt
	}
	return *q.mt, nil
}

func (q *request) gr() schema.GroupResource { return q.rs.groupResource() }

// serveResource dispatches every /api/v1/... and /apis/<g>/<v>/... resource request.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request) {
	ri := infoFrom(r.Context())
	rs := s.reg.lookup(ri.Group, ri.Version, ri.Resource)
	if rs == nil || !ri.IsResource {
		writeError(w, errNotFoundPath(r), groupResourceNone, "")
		return
	}
	q := &request{rs: rs, ri: ri, user: userFrom(r.Context())}
	if rs.Namespaced {
		q.ns = ri.Namespace
		if q.ns == "" && ri.Name != "" {
			writeError(w, errNotFoundPath(r), groupResourceNone, "")
			return
		}
	}
	if rs.Serve != nil {
		rs.Serve(s, w, r, q)
		return
	}
	if ri.Subresource == "" || ri.Subresource == "status" {
		if _, err := s.mediaType(r, q); err != nil {
			writeError(w, err, q.gr(), q.ri.Name)
			return
		}
	}
	switch ri.Subresource {
	case "":
		s.serveMain(w, r, q)
	case "status":
		if !rs.Status {
			writeError(w, errNotFoundPath(r), groupResourceNone, "")
			return
		}
		s.serveStatus(w, r, q)
	case "scale":
		if rs.Scale == nil {
			writeError(w, errNotFoundPath(r), groupResourceNone, "")
			return
		}
		s.serveScale(w, r, q)
	default:
		s.serveExtra(w, r, q)
	}
}

func (s *Server) serveMain(w http.ResponseWriter, r *http.Request, q *request) {
	switch q.ri.Verb {
	case "get":
		s.handleGet(w, r, q)
	case "list":
		s.handleList(w, r, q)
	case "watch":
		s.handleWatch(w, r, q)
	case "create":
		if q.ri.Name != "" {
			writeError(w, errMethodNotAllowed(r), q.gr(), q.ri.Name)
			return
		}
		s.handleCreate(w, r, q)
	case "update":
		s.handleUpdate(w, r, q)
	case "patch":
		s.handlePatch(w, r, q)
	case "delete":
		s.handleDelete(w, r, q)
	case "deletecollection":
		s.handleDeleteCollection(w, r, q)
	default:
		writeError(w, errMethodNotAllowed(r), q.gr(), q.ri.Name)
	}
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request, q *request) {
	switch q.ri.Verb {
	case "get":
		s.handleGet(w, r, q)
	case "update":
		s.handleUpdate(w, r, q)
	case "patch":
		s.handlePatch(w, r, q)
	default:
		writeError(w, errMethodNotAllowed(r), q.gr(), q.ri.Name)
	}
}

// readBody reads a request body up to the limit: 413 beyond it.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, apierrors.NewBadRequest("the request body is empty")
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest("reading the request body: " + err.Error())
	}
	if int64(len(data)) > s.cfg.MaxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError("limit is 3145728")
	}
	return data, nil
}

func isNotFound(err error) bool {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Code == http.StatusNotFound
	}
	return false
}
