package image

import (
	"fmt"
	"strconv"
	"strings"
)

// Argv is the command line of a container of this image, given the pod's
// command and args, by Kubernetes' rules: command replaces the entrypoint
// (and the image's cmd with it); args replace the cmd.
func (c Config) Argv(command, args []string) []string {
	var out []string
	switch {
	case len(command) > 0:
		out = append(out, command...)
		out = append(out, args...)
	case len(args) > 0:
		out = append(out, c.Entrypoint...)
		out = append(out, args...)
	default:
		out = append(out, c.Entrypoint...)
		out = append(out, c.Cmd...)
	}
	return out
}

// IDs returns the uid and gid the image's User names, "" meaning root.
// Only numeric "uid" or "uid:gid" is understood; a bare uid gets gid 0.
// Resolving names would mean reading /etc/passwd through the layers, which
// skiff does not do yet.
func (c Config) IDs() (uid, gid uint32, err error) {
	if c.User == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(c.User, ":")
	uid, err = parseID(u)
	if err != nil {
		return 0, 0, fmt.Errorf("image user %q: %w", c.User, err)
	}
	if hasGroup {
		if gid, err = parseID(g); err != nil {
			return 0, 0, fmt.Errorf("image user %q: %w", c.User, err)
		}
	}
	return uid, gid, nil
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a numeric id (user and group names are not supported)", s)
	}
	return uint32(n), nil
}
