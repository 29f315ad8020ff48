package framework

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Queue is a controller's de-duplicating, rate-limited work queue of object keys, with the
// workers that drain it into a Reconciler.
type Queue struct {
	name    string
	q       workqueue.TypedRateLimitingInterface[string]
	metrics *ControllerMetrics
	log     *slog.Logger
}

// NewQueue builds a queue named after its controller. It starts nothing.
func NewQueue(name string, m *ControllerMetrics, log *slog.Logger) *Queue {
	if log == nil {
		log = slog.Default()
	}
	cfg := workqueue.TypedRateLimitingQueueConfig[string]{Name: name}
	if m != nil {
		cfg.MetricsProvider = m
	}
	return &Queue{
		name:    name,
		q:       workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), cfg),
		metrics: m,
		log:     log,
	}
}

// Add queues key; a key already waiting is not queued twice.
func (q *Queue) Add(key string) { q.q.Add(key) }

// AddAfter queues key after d.
func (q *Queue) AddAfter(key string, d time.Duration) { q.q.AddAfter(key, d) }

// Len is the number of keys waiting.
func (q *Queue) Len() int { return q.q.Len() }

// AddObject queues the key of a Kubernetes object (or of a deleted object's tombstone).
func (q *Queue) AddObject(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		q.log.Warn("cannot key object", "err", err)
		return
	}
	q.q.Add(key)
}

// Handler queues the key of every added, updated and deleted object.
func (q *Queue) Handler() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    q.AddObject,
		UpdateFunc: func(_, obj any) { q.AddObject(obj) },
		DeleteFunc: q.AddObject,
	}
}

// Run waits for the caches, then reconciles keys with workers goroutines until ctx ends. It
// shuts the queue down and waits for its workers before returning.
func (q *Queue) Run(ctx context.Context, workers int, r Reconciler, synced ...cache.InformerSynced) error {
	defer q.q.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", q.name, context.Cause(ctx))
	}
	if workers < 1 {
		workers = 1
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q.processNext(ctx, r) {
			}
		}()
	}
	<-ctx.Done()
	q.q.ShutDown()
	wg.Wait()
	return nil
}

func (q *Queue) processNext(ctx context.Context, r Reconciler) bool {
	key, quit := q.q.Get()
	if quit {
		return false
	}
	defer q.q.Done(key)
	start := time.Now()
	res, err := q.reconcile(ctx, r, key)
	outcome := "success"
	switch {
	case ctx.Err() != nil:
		// Leadership is gone: leave the key; the next leader lists everything anyway.
		return true
	case err != nil && IsTerminal(err):
		outcome = "terminal"
		q.q.Forget(key)
		q.log.Error("reconcile failed; not retrying", "key", key, "err", err)
	case err != nil:
		outcome = "error"
		q.q.AddRateLimited(key)
		level := slog.LevelInfo
		if apierrors.IsConflict(err) {
			level = slog.LevelDebug // a cache a write behind: routine, retried at once
		}
		q.log.Log(ctx, level, "reconcile failed; retrying", "key", key, "err", err, "retries", q.q.NumRequeues(key))
	case res.RequeueAfter > 0:
		outcome = "requeue_after"
		q.q.Forget(key)
		q.q.AddAfter(key, res.RequeueAfter)
	default:
		q.q.Forget(key)
	}
	if q.metrics != nil {
		q.metrics.ObserveReconcile(time.Since(start), outcome, err)
	}
	return true
}

// reconcile turns a panic in one reconcile into an error for that key, so one bad object
// cannot take the controller manager down.
func (q *Queue) reconcile(ctx context.Context, r Reconciler, key string) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in reconcile of %q: %v", key, p)
		}
	}()
	return r.Reconcile(ctx, key)
}
