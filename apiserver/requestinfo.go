package apiserver

import (
	"context"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// requestInfo is what a request asks for, parsed from its path, method and query as
// kube-apiserver's RequestInfoFactory does. Authorization and the handlers both use it.
type requestInfo struct {
	IsResource  bool
	Verb        string // get list watch create update patch delete deletecollection, or the HTTP verb
	Path        string
	Group       string
	Version     string
	Namespace   string
	Resource    string
	Subresource string
	Name        string

	// read is the object the Node authorizer read from this server's replica to decide
	// the request (a node's pod status write), kept for the write's first, optimistic
	// attempt, which would read the same replica again.
	read *replicaRead
}

// replicaRead is one object read from this server's replica, at its modify revision.
type replicaRead struct {
	rs  *Resource
	obj runtime.Object
	rev int64
}

type ctxKey int

const (
	userKey ctxKey = iota
	infoKey
)

func withUser(ctx context.Context, u *UserInfo) context.Context {
	return context.WithValue(ctx, userKey, u)
}

func userFrom(ctx context.Context) *UserInfo {
	u, _ := ctx.Value(userKey).(*UserInfo)
	return u
}

func withInfo(ctx context.Context, ri *requestInfo) context.Context {
	return context.WithValue(ctx, infoKey, ri)
}

func infoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(infoKey).(*requestInfo)
	if ri == nil {
		return &requestInfo{}
	}
	return ri
}

// parseRequestInfo reads /api/v1/... and /apis/<group>/<version>/... paths.
func parseRequestInfo(r *http.Request) *requestInfo {
	ri := &requestInfo{Path: r.URL.Path, Verb: strings.ToLower(r.Method)}
	parts := splitPath(r.URL.Path)
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		ri.Version, parts = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		ri.Group, ri.Version, parts = parts[1], parts[2], parts[3:]
	default:
		return ri
	}
	if len(parts) == 0 {
		return ri // the group-version's resource list
	}
	ri.IsResource = true
	// /namespaces/<ns>/<resource>... is namespaced unless it is a subresource of a
	// namespace itself (namespaces/<name>/status, /finalize).
	if parts[0] == "namespaces" && len(parts) >= 3 && parts[2] != "status" && parts[2] != "finalize" {
		ri.Namespace, parts = parts[1], parts[2:]
	} else if parts[0] == "namespaces" && len(parts) >= 2 {
		ri.Namespace = parts[1] // a namespace is addressed within itself, as kube does
	}
	ri.Resource = parts[0]
	if len(parts) >= 2 {
		ri.Name = parts[1]
	}
	if len(parts) >= 3 {
		ri.Subresource = parts[2]
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		ri.Verb = "get"
		if ri.Name == "" {
			ri.Verb = "list"
		}
		if v := q.Get("watch"); v == "true" || v == "1" {
			ri.Verb = "watch"
		}
	case http.MethodPost:
		ri.Verb = "create"
	case http.MethodPut:
		ri.Verb = "update"
	case http.MethodPatch:
		ri.Verb = "patch"
	case http.MethodDelete:
		ri.Verb = "delete"
		if ri.Name == "" {
			ri.Verb = "deletecollection"
		}
	}
	if ri.Resource == "namespaces" && ri.Subresource == "" && ri.Name == "" {
		ri.Namespace = ""
	}
	return ri
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
