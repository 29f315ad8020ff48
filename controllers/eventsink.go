package controllers

import (
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
)

// eventWriters is how many events the controllers write at once.
const eventWriters = 64

// concurrentSink writes events from up to n goroutines at once. client-go's record
// broadcaster calls its sink from one goroutine, one event at a time, and drops events once
// 1,000 wait: at 200 ms a write on a loaded machine that was 5 events a second, and a burst
// of 10,000 bound pods got almost no Scheduled events. kube-scheduler records through
// client-go's events library instead, which writes each event from its own goroutine; skiff
// serves no events.k8s.io API, so the controllers keep the record library and its
// correlator (aggregation, spam filter) and only the writes leave its goroutine. When n
// writes are in flight the broadcaster waits, so its queue fills and drops as before.
type concurrentSink struct {
	sink  record.EventSink
	slots chan struct{}
	log   *slog.Logger
	retry time.Duration // between tries of a write the server did not answer
}

func newConcurrentSink(sink record.EventSink, n int, log *slog.Logger) *concurrentSink {
	return &concurrentSink{sink: sink, slots: make(chan struct{}, max(1, n)), log: log, retry: time.Second}
}

var _ record.EventSink = (*concurrentSink)(nil)

// Create writes the event in the background and answers at once with the event itself:
// the correlator keeps what it is given (the name it chose, the count) for a later patch.
// The goroutine writes a copy: the caller's event is the correlator's from here on.
func (s *concurrentSink) Create(e *corev1.Event) (*corev1.Event, error) {
	cp := e.DeepCopy()
	s.write(func() error { _, err := s.sink.Create(cp); return err })
	return e, nil
}

func (s *concurrentSink) Update(e *corev1.Event) (*corev1.Event, error) {
	cp := e.DeepCopy()
	s.write(func() error { _, err := s.sink.Update(cp); return err })
	return e, nil
}

// Patch raises the count of an event written before. If it is gone, or its create has not
// landed yet, the event is created whole, as the record library does itself on NotFound.
func (s *concurrentSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	cp := e.DeepCopy()
	s.write(func() error {
		_, err := s.sink.Patch(cp, data)
		if apierrors.IsNotFound(err) {
			cp.ResourceVersion = ""
			_, err = s.sink.Create(cp)
		}
		return err
	})
	return e, nil
}

// write runs w in its own goroutine once a slot is free. A write the server refused is
// dropped (as the record library drops it); one that did not reach the server is tried up
// to three times.
func (s *concurrentSink) write(w func() error) {
	s.slots <- struct{}{}
	go func() {
		defer func() { <-s.slots }()
		for try := 1; ; try++ {
			err := w()
			var status apierrors.APIStatus
			if err == nil || errors.As(err, &status) || try == 3 {
				if err != nil && !apierrors.IsAlreadyExists(err) {
					s.log.Debug("event not written", "err", err)
				}
				return
			}
			time.Sleep(s.retry)
		}
	}()
}
