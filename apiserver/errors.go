package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/raftstore"
)

// toStatus turns any error into the Kubernetes Status a client expects. The store's
// sentinels keep their meaning: not found 404, exists/conflict 409, compacted 410 Expired,
// too large 413, no leader 503.
func toStatus(err error, gr schema.GroupResource, name string) *metav1.Status {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st := se.Status()
		return &st
	}
	var ce *raftstore.CompactedError
	var out *apierrors.StatusError
	switch {
	case errors.As(err, &ce):
		out = apierrors.NewResourceExpired("too old resource version: " + err.Error())
	case errors.Is(err, raftstore.ErrNotFound):
		out = apierrors.NewNotFound(gr, name)
	case errors.Is(err, raftstore.ErrKeyExists):
		out = apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, raftstore.ErrConflict):
		out = apierrors.NewConflict(gr, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, raftstore.ErrTooLarge):
		out = apierrors.NewRequestEntityTooLargeError("object exceeds the maximum size")
	case errors.Is(err, raftstore.ErrInvalid):
		out = apierrors.NewBadRequest(err.Error())
	case errors.Is(err, raftstore.ErrNoLeader), errors.Is(err, raftstore.ErrNotLeader), errors.Is(err, raftstore.ErrClosed):
		out = apierrors.NewServiceUnavailable(err.Error())
	case errors.Is(err, raftstore.ErrIndeterminate):
		out = apierrors.NewServerTimeout(gr, "write", 1)
	case errors.Is(err, context.DeadlineExceeded):
		out = apierrors.NewTimeoutError("request did not complete in time", 1)
	default:
		out = apierrors.NewInternalError(err)
	}
	return &out.ErrStatus
}

// writeStatus writes a Status as JSON; every client decodes JSON errors whatever it asked
// for, and kube-apiserver answers errors the same way when negotiation fails.
func writeStatus(w http.ResponseWriter, st *metav1.Status) {
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
		st.Code = int32(code)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}

func writeError(w http.ResponseWriter, err error, gr schema.GroupResource, name string) {
	writeStatus(w, toStatus(err, gr, name))
}

var groupResourceNone = schema.GroupResource{}

// errNotFoundPath is kube-apiserver's answer for a path nothing serves.
func errNotFoundPath(r *http.Request) error {
	return apierrors.NewGenericServerResponse(http.StatusNotFound, r.Method, groupResourceNone, "", "", 0, false)
}

func errMethodNotAllowed(r *http.Request) error {
	return apierrors.NewMethodNotSupported(groupResourceNone, r.Method)
}

func badRequest(err error) error { return apierrors.NewBadRequest(err.Error()) }

func unsupportedMediaType(ct string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf" + mediaSuffix(ct),
	}}
}

func mediaSuffix(ct string) string {
	if ct == "" {
		return ""
	}
	return " (got " + ct + ")"
}
