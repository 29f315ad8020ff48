package apiserver

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// inflight bounds how many requests a server works on at once, as kube-apiserver's
// --max-requests-inflight and --max-mutating-requests-inflight (400 and 200, which its
// priority and fairness shares out in the same total). A request over the bound waits its
// turn before its body is read; one that waits longer than a quarter of the request
// timeout (APF's queue wait limit) or past its own deadline gets 429 with Retry-After,
// which client-go retries.
//
// Why it matters here: with 1,000 node agents reporting pod status at once, a leader had
// more than a thousand writes in progress, each with its decoded objects, field management
// and a 32 KiB stack, all live when the collector ran: 65 MB of live heap and twice that
// in peak RSS, for no throughput, since they shared the same two cores. Waiting, a request
// holds a small stack and its unread body.
//
// Long-running requests (watches, exec, followed logs) are not counted, nor are members
// of system:masters (the controllers and scheduler of the leader, the admin), which APF
// exempts too.
type inflight struct {
	reads, writes chan struct{} // nil: unbounded
	wait          time.Duration
	current       [2]prometheus.Gauge // readOnly, mutating
	dropped       [2]prometheus.Counter
}

var requestKinds = [2]string{"readOnly", "mutating"}

func newInflight(reads, writes int, wait time.Duration, m *metrics) *inflight {
	l := &inflight{wait: wait}
	if reads > 0 {
		l.reads = make(chan struct{}, reads)
	}
	if writes > 0 {
		l.writes = make(chan struct{}, writes)
	}
	for i, k := range requestKinds {
		l.current[i] = m.inflight.WithLabelValues(k)
		l.dropped[i] = m.dropped.WithLabelValues(k)
	}
	return l
}

// limit runs after authentication, so that it knows the user.
func (l *inflight) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mutating := r.Method != http.MethodGet && r.Method != http.MethodHead
		kind, slots := 0, l.reads
		if mutating {
			kind, slots = 1, l.writes
		}
		if slots == nil || longRunning(r, infoFrom(r.Context())) || exempt(userFrom(r.Context())) {
			serveGrown(next, w, r, mutating)
			return
		}
		if !l.acquire(r, slots) {
			l.dropped[kind].Inc()
			w.Header().Set("Retry-After", "1")
			writeError(w, apierrors.NewTooManyRequests("Too many requests, please try again later.", 1), schema.GroupResource{}, "")
			return
		}
		l.current[kind].Inc()
		defer func() {
			<-slots
			l.current[kind].Dec()
		}()
		serveGrown(next, w, r, mutating)
	})
}

// acquire takes a slot, waiting at most l.wait and while the request lasts.
func (l *inflight) acquire(r *http.Request, slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
	case <-r.Context().Done():
	}
	return false
}

func exempt(u *UserInfo) bool {
	return u != nil && contains(u.Groups, "system:masters")
}

// serveGrown serves a write on a stack grown at once (growStack) now that it runs, not
// while it waits.
func serveGrown(next http.Handler, w http.ResponseWriter, r *http.Request, mutating bool) {
	if mutating {
		growStack()
	}
	next.ServeHTTP(w, r)
}
