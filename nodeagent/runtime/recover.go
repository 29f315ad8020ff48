package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/system"
)

// recoverAll takes over every container found under the root.
func (r *Libcontainer) recoverAll() error {
	entries, err := os.ReadDir(r.containersDir)
	if err != nil {
		return fmt.Errorf("recover containers: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		if err := r.recoverOne(e.Name()); err != nil {
			// One damaged container must not keep the agent from
			// starting: report it as ended, so it gets removed.
			r.log.Error("recovering container", "container", e.Name(), "err", err)
			r.markLost(e.Name())
		}
	}
	return nil
}

func (r *Libcontainer) recoverOne(id string) error {
	var meta metaRecord
	err := readJSON(filepath.Join(r.containersDir, id, "meta.json"), &meta)
	if errors.Is(err, os.ErrNotExist) {
		// Start crashed before writing anything that needs undoing but
		// the directory: nothing to report, so nothing to keep.
		return os.RemoveAll(filepath.Join(r.containersDir, id))
	}
	if err != nil {
		return fmt.Errorf("read meta.json: %w", err)
	}
	meta.Spec.ID = id
	c := r.newContainer(meta.Spec)
	c.startAt = meta.StartedAt
	c.status.StartedAt = meta.StartedAt
	r.containers[id] = c

	var rec exitRecord
	err = readJSON(filepath.Join(c.dir, "exit.json"), &rec)
	if err == nil {
		if lc, err := libcontainer.Load(r.stateRoot, id); err == nil {
			c.setLibcontainer(lc) // so Remove can destroy its cgroup
		}
		c.applyExit(rec)
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		// Torn by a crash: find out again from the process.
		r.log.Warn("unreadable exit record", "container", id, "err", err)
	}

	lc, err := libcontainer.Load(r.stateRoot, id)
	if err != nil {
		// Never created, or its state is unreadable: it is not running
		// under our supervision and its end is unknown.
		r.log.Warn("container state not loadable", "container", id, "err", err)
		c.applyExit(exitRecord{ExitCode: 137, Reason: ReasonUnknown, FinishedAt: time.Now()})
		return nil
	}
	c.setLibcontainer(lc)
	st, err := lc.State()
	if err != nil {
		return err
	}
	pid := st.InitProcessPid
	status, err := lc.Status()
	if err != nil {
		return err
	}
	if status != libcontainer.Stopped {
		pidfd, err := openPidfd(pid)
		if err == nil {
			// Check again now that the pid is pinned: it might have
			// exited and been reused in between.
			if status, err = lc.Status(); err == nil && status != libcontainer.Stopped {
				c.pidfd = pidfd
				c.status.State = StateRunning
				c.status.Pid = pid
				r.supervise(c, pid)
				return nil
			}
			pidfd.Close()
		}
	}
	// It ended while no one watched. If it is still our unreaped child (the
	// same process opened a new runtime), its status is still there.
	if isZombie(pid, st.InitProcessStartTime) {
		if pidfd, err := openPidfd(pid); err == nil {
			c.pidfd = pidfd
			r.finish(c, pid)
			return nil
		}
	}
	rec = exitRecord{ExitCode: 137, Reason: ReasonUnknown, FinishedAt: time.Now()}
	if n, err := oomKills(st.CgroupPaths); err == nil && n > 0 {
		rec.OOMKilled, rec.Reason = true, ReasonOOMKilled
	}
	if err := writeJSON(filepath.Join(c.dir, "exit.json"), rec); err != nil {
		return err
	}
	c.applyExit(rec)
	return nil
}

// markLost registers id as a container whose end is unknown, replacing
// whatever a failed recovery registered.
func (r *Libcontainer) markLost(id string) {
	old := r.containers[id]
	c := r.newContainer(Spec{ID: id})
	if old != nil {
		c.spec, c.lc, c.cgroupPaths = old.spec, old.lc, old.cgroupPaths
		c.status.Annotations = old.spec.Annotations
		old.mu.Lock()
		if old.pidfd != nil {
			old.pidfd.Close()
			old.pidfd = nil
		}
		old.mu.Unlock()
	}
	c.applyExit(exitRecord{ExitCode: 137, Reason: ReasonUnknown, FinishedAt: time.Now()})
	r.containers[id] = c
}

// isZombie reports whether pid is the exited, unreaped process that
// started at startTime (clock ticks since boot, as libcontainer records).
func isZombie(pid int, startTime uint64) bool {
	st, err := system.Stat(pid)
	return err == nil && st.StartTime == startTime && st.State == system.Zombie
}
