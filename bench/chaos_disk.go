package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// slowDisk throttles a process's writes to the block device under a directory with a
// blkio cgroup (cgroup v1's blkio.throttle.write_iops_device, or v2's io.max): moving the
// process in makes every fsync wait its turn at a few IOPS, as on a failing or saturated
// disk; moving it back ends the fault. Only the process's own submitted I/O is throttled
// (fsync and direct I/O; write-back of its page cache is not attributed under v1), which is
// what Raft's log waits for.
type slowDisk struct {
	dir  string // the cgroup
	root string // where a process goes back to
	v2   bool
}

// slowDiskIOPS is the write rate a slowed server gets.
const slowDiskIOPS = 15

// newSlowDisk makes the throttled cgroup for the device holding dataDir.
func newSlowDisk(dataDir string) (*slowDisk, error) {
	dev, err := blockDevice(dataDir)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("skiff-chaos-%d", os.Getpid())
	if st, err := os.Stat("/sys/fs/cgroup/blkio"); err == nil && st.IsDir() {
		d := &slowDisk{dir: filepath.Join("/sys/fs/cgroup/blkio", name), root: "/sys/fs/cgroup/blkio"}
		if err := os.Mkdir(d.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("bench: slow disk: %w", err)
		}
		if err := os.WriteFile(filepath.Join(d.dir, "blkio.throttle.write_iops_device"), fmt.Appendf(nil, "%s %d", dev, slowDiskIOPS), 0); err != nil {
			d.close()
			return nil, fmt.Errorf("bench: slow disk: throttle %s: %w", dev, err)
		}
		return d, nil
	}
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
	if err != nil || !strings.Contains(string(b), "io") {
		return nil, fmt.Errorf("bench: slow disk: no blkio (v1) or io (v2) cgroup controller")
	}
	d := &slowDisk{dir: filepath.Join("/sys/fs/cgroup", name), root: "/sys/fs/cgroup", v2: true}
	if err := os.Mkdir(d.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("bench: slow disk: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "io.max"), fmt.Appendf(nil, "%s wiops=%d", dev, slowDiskIOPS), 0); err != nil {
		d.close()
		return nil, fmt.Errorf("bench: slow disk: io.max %s: %w", dev, err)
	}
	return d, nil
}

// slow moves pid (all its threads) into the throttled cgroup, or back out.
func (d *slowDisk) slow(pid int, on bool) error {
	to := d.root
	if on {
		to = d.dir
	}
	err := os.WriteFile(filepath.Join(to, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
	if err != nil && !on && errors.Is(err, syscall.ESRCH) {
		return nil // it died meanwhile: nothing to undo
	}
	if err != nil {
		return fmt.Errorf("bench: slow disk: move %d to %s: %w", pid, to, err)
	}
	return nil
}

// close removes the cgroup; a process still in it is moved out first.
func (d *slowDisk) close() {
	if b, err := os.ReadFile(filepath.Join(d.dir, "cgroup.procs")); err == nil {
		for _, f := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(d.root, "cgroup.procs"), []byte(f), 0)
		}
	}
	_ = syscall.Rmdir(d.dir)
}

// blockDevice is "major:minor" of the whole disk holding path (the throttle works per
// disk, not per partition).
func blockDevice(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("bench: slow disk: %w", err)
	}
	maj, min := unix.Major(st.Dev), unix.Minor(st.Dev)
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", maj, min)
	if _, err := os.Stat(sys); err != nil {
		return "", fmt.Errorf("bench: slow disk: %s is on %d:%d, not a block device (overlay or tmpfs?)", path, maj, min)
	}
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		b, err := os.ReadFile(filepath.Join(sys, "..", "dev"))
		if err != nil {
			return "", fmt.Errorf("bench: slow disk: the disk of partition %d:%d: %w", maj, min, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return fmt.Sprintf("%d:%d", maj, min), nil
}
