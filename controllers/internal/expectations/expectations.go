// Package expectations remembers the creations and deletions a controller has asked for
// and not yet seen in its informer cache, so that it does not act twice on a stale cache
// (Kubernetes' ControllerExpectations, pkg/controller/controller_utils.go).
package expectations

import (
	"sync"
	"time"
)

// Timeout after which unmet expectations are ignored, as upstream's ExpectationsTimeout:
// a watch event lost for good must not block a controller forever.
const Timeout = 5 * time.Minute

type entry struct {
	add, del  int
	deletions map[string]bool // keys of pods whose deletion is expected
	at        time.Time
}

// Expectations is safe for concurrent use.
type Expectations struct {
	mu  sync.Mutex
	m   map[string]*entry
	now func() time.Time
}

// New returns empty expectations.
func New() *Expectations { return &Expectations{m: map[string]*entry{}, now: time.Now} }

// Satisfied reports whether the controller named key may act: nothing outstanding, or the
// expectations are older than Timeout, or there are none.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	return (x.add <= 0 && x.del <= 0) || e.now().Sub(x.at) > Timeout
}

// ExpectCreations records that n creations are about to be asked for.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &entry{add: n, at: e.now()}
}

// ExpectDeletions records the pods about to be deleted.
func (e *Expectations) ExpectDeletions(key string, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &entry{del: len(podKeys), deletions: map[string]bool{}, at: e.now()}
	for _, k := range podKeys {
		x.deletions[k] = true
	}
	e.m[key] = x
}

// Expect records creations and deletions about to be asked for together.
func (e *Expectations) Expect(key string, creations int, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &entry{add: creations, del: len(podKeys), deletions: map[string]bool{}, at: e.now()}
	for _, k := range podKeys {
		x.deletions[k] = true
	}
	e.m[key] = x
}

// CreationObserved is called when a created pod appears (or a creation failed).
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok && x.add > 0 {
		x.add--
	}
}

// DeletionObserved is called when podKey's deletion is seen (or the delete failed).
func (e *Expectations) DeletionObserved(key, podKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok && x.deletions[podKey] {
		delete(x.deletions, podKey)
		x.del--
	}
}

// Delete forgets the controller named key (it was deleted).
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
