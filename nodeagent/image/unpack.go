package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// OCI whiteout markers (image-spec layer.md). In a layer, ".wh.NAME" deletes
// NAME from the layers below and ".wh..wh..opq" hides everything below in its
// directory.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// unpackLayer extracts l's uncompressed tar into dir, which must be empty,
// and checks the stream against diffID. Whiteouts are written the way
// overlayfs expects them in a lower dir: a 0/0 character device for a deleted
// entry and the trusted.overlay.opaque xattr for an opaque directory. That
// needs CAP_MKNOD and CAP_SYS_ADMIN, as the node agent has.
func unpackLayer(ctx context.Context, l v1.Layer, diffID v1.Hash, dir string) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if err := extractTar(ctx, io.TeeReader(rc, h), dir); err != nil {
		return err
	}
	// Read past the tar trailer so the digest covers the whole stream.
	if _, err := io.Copy(h, rc); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); diffID.Algorithm == "sha256" && got != diffID.String() {
		return fmt.Errorf("content digest %s does not match diffID %s", got, diffID)
	}
	return nil
}

func extractTar(ctx context.Context, r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path  string
		mtime time.Time
	}
	// Directory times are set last: creating entries inside would bump them.
	var dirTimes []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		rel := cleanEntryPath(hdr.Name)
		if rel == "" {
			// The layer's root directory itself: keep dir's own attributes.
			continue
		}
		// Resolve the parent inside dir, so that neither ".." nor a
		// symlink planted by an earlier entry can lead outside it.
		parent, err := securejoin.SecureJoin(dir, filepath.Dir(rel))
		if err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		base := filepath.Base(rel)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}

		if strings.HasPrefix(base, whiteoutPrefix) {
			if err := writeWhiteout(parent, base); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			continue
		}

		path := filepath.Join(parent, base)
		if err := writeEntry(tr, hdr, dir, path); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirTimes = append(dirTimes, dirTime{path, hdr.ModTime})
		}
	}
	for i := len(dirTimes) - 1; i >= 0; i-- {
		if err := setTimes(dirTimes[i].path, dirTimes[i].mtime); err != nil {
			return err
		}
	}
	return nil
}

// cleanEntryPath makes a tar entry name relative to the layer root, with any
// ".." that would climb above it removed; "" means the root itself.
func cleanEntryPath(name string) string {
	return strings.TrimPrefix(filepath.Clean("/"+name), "/")
}

func writeWhiteout(parent, base string) error {
	switch {
	case base == whiteoutOpaque:
		return unix.Lsetxattr(parent, "trusted.overlay.opaque", []byte("y"), 0)
	case strings.HasPrefix(base, whiteoutMeta):
		// Other ".wh..wh." names are aufs bookkeeping (hard link
		// directories); they carry no content for us.
		return nil
	default:
		path := filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
		if err := removeExisting(path); err != nil {
			return err
		}
		return unix.Mknod(path, unix.S_IFCHR, 0)
	}
}

func writeEntry(tr *tar.Reader, hdr *tar.Header, root, path string) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(path)
		if err == nil && !fi.IsDir() {
			if err := os.Remove(path); err != nil {
				return err
			}
			err = os.ErrNotExist
		}
		if errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(path, 0o755); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	case tar.TypeReg:
		if err := removeExisting(path); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := removeExisting(path); err != nil {
			return err
		}
		// The target is stored as is: it is resolved inside the
		// container's root, never by us.
		if err := os.Symlink(hdr.Linkname, path); err != nil {
			return err
		}
	case tar.TypeLink:
		rel := cleanEntryPath(hdr.Linkname)
		targetParent, err := securejoin.SecureJoin(root, filepath.Dir(rel))
		if err != nil {
			return err
		}
		if err := removeExisting(path); err != nil {
			return err
		}
		// A hard link names the entry itself, not what it points to.
		if err := os.Link(filepath.Join(targetParent, filepath.Base(rel)), path); err != nil {
			return err
		}
		return nil // shares the target's inode and so its attributes
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := removeExisting(path); err != nil {
			return err
		}
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknod(path, kind|mode, dev); err != nil {
			return err
		}
	default:
		// PAX/GNU metadata entries are consumed by archive/tar; anything
		// else (sparse files of old formats, ...) is not worth supporting.
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}

	if err := os.Lchown(path, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	for key, value := range hdr.PAXRecords {
		if attr, ok := strings.CutPrefix(key, "SCHILY.xattr."); ok {
			if err := unix.Lsetxattr(path, attr, []byte(value), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
				return fmt.Errorf("set xattr %s: %w", attr, err)
			}
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears set-user-ID and set-group-ID bits.
		if err := unix.Chmod(path, mode); err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		return setTimes(path, hdr.ModTime)
	}
	return nil
}

func removeExisting(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.RemoveAll(path)
	}
	return os.Remove(path)
}

func setTimes(path string, mtime time.Time) error {
	ts := unix.NsecToTimespec(mtime.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
