package runtime

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOverlay mounts the container's root filesystem at target: the image
// layers read-only below, a per-container upper dir for its writes.
func mountOverlay(layers []string, upper, work, target string) error {
	lowers := make([]string, 0, len(layers))
	// overlayfs lists the top layer first; images list the base first.
	for i := len(layers) - 1; i >= 0; i-- {
		if strings.ContainsAny(layers[i], ":,") {
			return fmt.Errorf("%w: layer path %q holds ':' or ','", ErrInvalid, layers[i])
		}
		lowers = append(lowers, layers[i])
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"), upper, work)
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("%w: %d layers make overlay options longer than a page", ErrInvalid, len(layers))
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay rootfs at %s: %w", target, err)
	}
	return nil
}

// unmountRootfs unmounts target if something is mounted there.
func unmountRootfs(target string) error {
	for {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue // a rootfs mounted twice by a crash-retry: unmount again
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not (or no longer) a mount point
		case errors.Is(err, unix.EBUSY):
			// Still held, e.g. by a process cwd; detach so the removal of
			// the directory can proceed and the kernel frees it later.
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
