package controllers

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
)

// gateSink is an event sink whose writes wait at a gate: it counts how many wait at once.
type gateSink struct {
	mu       sync.Mutex
	inFlight int
	most     int
	created  []string
	gate     chan struct{}
	missing  bool // Patch answers NotFound
}

func (g *gateSink) enter() {
	g.mu.Lock()
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
}

func (g *gateSink) Create(e *corev1.Event) (*corev1.Event, error) {
	g.enter()
	g.mu.Lock()
	g.created = append(g.created, e.InvolvedObject.Name+" "+e.Reason)
	g.mu.Unlock()
	return e, nil
}

func (g *gateSink) Update(e *corev1.Event) (*corev1.Event, error) { g.enter(); return e, nil }

func (g *gateSink) Patch(e *corev1.Event, _ []byte) (*corev1.Event, error) {
	g.enter()
	if g.missing {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "events"}, e.Name)
	}
	return e, nil
}

func (g *gateSink) snapshot() (most int, created []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.most, append([]string(nil), g.created...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Events recorded through the manager's broadcaster are written several at once: with the
// record library's own single writer, the second write waited for the first, and a burst of
// Scheduled events was dropped.
func TestEventsAreWrittenConcurrently(t *testing.T) {
	g := &gateSink{gate: make(chan struct{})}
	b := record.NewBroadcaster()
	defer b.Shutdown()
	b.StartRecordingToSink(newConcurrentSink(g, 8, slog.New(slog.DiscardHandler)))
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "default-scheduler"})
	for i := range 8 {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("p%d", i), UID: "u"}}
		rec.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned default/p%d to n1", i)
	}
	waitUntil(t, "8 event writes in flight at once", func() bool { most, _ := g.snapshot(); return most == 8 })
	close(g.gate)
	waitUntil(t, "the 8 events written", func() bool { _, c := g.snapshot(); return len(c) == 8 })
}

// A patch of an event that is gone creates it whole, as the record library does.
func TestEventPatchOfMissingEventCreatesIt(t *testing.T) {
	g := &gateSink{gate: make(chan struct{}), missing: true}
	close(g.gate)
	s := newConcurrentSink(g, 2, slog.New(slog.DiscardHandler))
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "p.1", Namespace: "default", ResourceVersion: "7"},
		InvolvedObject: corev1.ObjectReference{Name: "p"}, Reason: "BackOff", Count: 2}
	if _, err := s.Patch(ev, []byte(`{"count":2}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the event created", func() bool { _, c := g.snapshot(); return len(c) == 1 && c[0] == "p BackOff" })
}
