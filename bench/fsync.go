package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// MeasureFsync appends 4 KiB blocks to a file in dir and fsyncs after each, as a write-ahead
// log does, and returns the latencies of write+fsync. It stops after n samples or budget,
// whichever comes first, and removes the file. The result bounds what any store that fsyncs
// every commit can reach with one client on this disk.
func MeasureFsync(ctx context.Context, dir string, n int, budget time.Duration) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return nil, fmt.Errorf("bench: fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4<<10)
	for i := range block {
		block[i] = byte(i)
	}
	lat := make([]time.Duration, 0, n)
	deadline := time.Now().Add(budget)
	for len(lat) < n && time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := f.Write(block); err != nil {
			return nil, fmt.Errorf("bench: fsync probe write %s: %w", filepath.Base(f.Name()), err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("bench: fsync probe sync: %w", err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}
