package apiserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// noCache sets what kube-apiserver sends on every response; kubectl's version dispatcher
// caches /version otherwise.
func noCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache, private")
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler panic into a 500 Status: no panic reaches a client, and
// the process keeps serving.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Logger.Error("panic serving request", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeError(w, apierrors.NewInternalError(fmt.Errorf("internal error")), groupResourceNone, "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the response code for metrics and logs, and passes Flush
// through for watches.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := s.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		ri := parseRequestInfo(r)
		r = r.WithContext(withInfo(r.Context(), ri))
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		resource := ri.Resource
		if ri.Subresource != "" {
			resource += "/" + ri.Subresource
		}
		s.metrics.observe(ri.Verb, resource, strconv.Itoa(rec.code), time.Since(start))
		s.cfg.Logger.Debug("request", "method", r.Method, "path", r.URL.Path, "code", rec.code, "duration", time.Since(start))
	})
}

// limitDuration gives a request that is not long-running a deadline: RequestTimeout, or the
// client's shorter ?timeout= (client-go sends it when its Config.Timeout is set), as
// kube-apiserver's WithTimeoutForNonLongRunningRequests. Handlers end with 504 Timeout when
// the store gives up on the deadline.
func (s *Server) limitDuration(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		if longRunning(r, ri) {
			next.ServeHTTP(w, r)
			return
		}
		d := s.cfg.RequestTimeout
		if v := r.URL.Query().Get("timeout"); v != "" {
			if t, err := time.ParseDuration(v); err == nil && t > 0 && t < d {
				d = t
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// longRunning is kube-apiserver's long-running request check: watches and the streaming
// subresources.
func longRunning(r *http.Request, ri *requestInfo) bool {
	if ri == nil {
		return false
	}
	switch ri.Subresource {
	case "exec", "attach", "portforward", "proxy":
		return true
	case "log":
		return r.URL.Query().Get("follow") == "true"
	}
	return ri.Verb == "watch" || r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1"
}
