package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/cluster"
)

// profile saves a CPU profile of every store node covering the measurement phase of the
// workload that starts now, as <dir>/skiff-<label>-<node>.pprof. The returned function waits
// for the captures; call it after the workload.
func (c *skiffCluster) profile(ctx context.Context, dir, label string, ph Phases, progress io.Writer) (wait func()) {
	var wg sync.WaitGroup
	secs := max(int(ph.Measure/time.Second), 1)
	for _, nd := range c.nodes {
		if nd.pprofAddr == "" {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("skiff-%s-%s.pprof", label, nd.id))
		wg.Go(func() {
			select {
			case <-time.After(ph.Warmup):
			case <-ctx.Done():
				return
			}
			if err := fetchProfile(ctx, nd.pprofAddr, secs, path); err != nil {
				fmt.Fprintf(progress, "bench: profile of %s: %v\n", nd.id, err)
				return
			}
			fmt.Fprintf(progress, "bench: saved CPU profile %s\n", path)
		})
	}
	return wg.Wait
}

func fetchProfile(ctx context.Context, addr string, secs int, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// profileSelf records a CPU profile of this process (the bench's own clients: a thousand
// watchers decode in it) for d, or until ctx ends, into path. The returned function waits
// for it. A profile already running (another phase's) makes it a no-op with a message.
func profileSelf(ctx context.Context, path string, d time.Duration, say func(string, ...any)) (wait func()) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		say("profile of the bench: %v", err)
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		say("profile of the bench: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		say("profile of the bench: %v", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			say("profile of the bench: %v", err)
			return
		}
		say("saved CPU profile %s", path)
	}()
	return func() { <-done }
}

// scrapeSkiffServers reads every server's /metrics (as the admin); nil for one that did
// not answer.
func scrapeSkiffServers(ctx context.Context, lc *cluster.LocalCluster) []*apiMetrics {
	var servers []cluster.Process
	for _, p := range lc.Processes {
		if p.Role == "server" {
			servers = append(servers, p)
		}
	}
	return scrapeServers(ctx, lc, servers)
}

// watchDelivery is the servers' skiff_apiserver_watch_delivery_seconds between two
// scrapes, summed over the servers that answered both.
func watchDelivery(before, after []*apiMetrics) histogram {
	var sum histogram
	for i := range after {
		if i >= len(before) || before[i] == nil || after[i] == nil {
			continue
		}
		d := after[i].WatchDelivery.sub(before[i].WatchDelivery)
		if sum.Bounds == nil {
			sum = d
		} else {
			sum = sum.add(d)
		}
	}
	return sum
}
