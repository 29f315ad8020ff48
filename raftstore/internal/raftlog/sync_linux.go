package raftlog

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data and the metadata needed to read it back (its size), not its
// timestamps. The descriptor is held for the call, so a concurrent Close cannot let it be
// reused by another file.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
