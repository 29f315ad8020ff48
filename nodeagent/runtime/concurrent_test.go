package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// TestConcurrentStartsAllSucceed: a node told to run many pods at once starts their
// containers concurrently (one worker per pod); every start must succeed. A start that
// fails sends the pod into back-off, which is seconds of startup latency.
func TestConcurrentStartsAllSucceed(t *testing.T) {
	requireRoot(t)
	rt := newRuntime(t, t.TempDir())
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = uniqueID(fmt.Sprintf("conc%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = rt.Start(context.Background(), testSpec(ids[i], "sleep", "60"))
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, id := range ids {
			if err := rt.Remove(context.Background(), id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("remove %s: %v", id, err)
			}
		}
	})
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("start %s: %v", ids[i], err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent starts failed", failed, n)
	}
}
