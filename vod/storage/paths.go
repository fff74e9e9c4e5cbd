package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxPathLen bounds a caller's relative path (PATH_MAX on Linux).
const maxPathLen = 4096

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP limit does.
const maxSymlinks = 40

// Clean validates a caller-supplied path that is meant to be relative to Config.RemotePath
// and returns it in canonical form ("a//b/./c/" becomes "a/b/c"; "." names RemotePath
// itself). It rejects, with an error wrapping [ErrBadPath]: the empty string, absolute paths,
// any ".." segment (even one that would stay inside), backslashes, NUL and other control
// characters, invalid UTF-8 and paths longer than 4096 bytes. A path Clean accepts can never
// name anything above RemotePath lexically; symlinks on the server are checked separately by
// every Client operation.
func Clean(rel string) (string, error) {
	switch {
	case rel == "":
		return "", fmt.Errorf("%w: empty", ErrBadPath)
	case len(rel) > maxPathLen:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadPath, maxPathLen)
	case !utf8.ValidString(rel):
		return "", fmt.Errorf("%w: %q: not UTF-8", ErrBadPath, rel)
	case rel[0] == '/':
		return "", fmt.Errorf("%w: %q: absolute", ErrBadPath, rel)
	}
	for _, r := range rel {
		if r == '\\' || unicode.IsControl(r) {
			return "", fmt.Errorf("%w: %q: backslash or control character", ErrBadPath, rel)
		}
	}
	for seg := range strings.SplitSeq(rel, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%w: %q: contains a .. segment", ErrBadPath, rel)
		}
	}
	return path.Clean(rel), nil
}

// within reports whether the absolute, clean path p is root or below it.
func within(root, p string) bool {
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// resolve maps a caller's relative path to the absolute remote path it names, following
// symlinks on the server component by component, and refuses (ErrBadPath) a result outside
// the root. With followLast false the last component is not followed, so that Remove and
// Rename act on a symlink itself. Components that do not exist are taken literally.
//
// The check is client-side on purpose: pkg/sftp's server answers REALPATH lexically,
// without resolving symlinks, so RealPath alone cannot be trusted. A symlink swapped in
// between this check and the operation is not caught (the server owner can always do that).
func (c *Client) resolve(rel string, followLast bool) (string, error) {
	clean, err := Clean(rel)
	if err != nil {
		return "", err
	}
	if clean == "." {
		return c.root, nil
	}
	abs, err := c.walk(c.root, strings.Split(clean, "/"), followLast)
	if err != nil {
		return "", err
	}
	if !within(c.root, abs) {
		return "", fmt.Errorf("%w: %q leaves the remote path", ErrBadPath, clean)
	}
	return abs, nil
}

// walk applies segs to the absolute path cur the way the kernel would, reading symlinks
// with Lstat/ReadLink. It returns a clean absolute path.
func (c *Client) walk(cur string, segs []string, followLast bool) (string, error) {
	links := 0
	for len(segs) > 0 {
		seg := segs[0]
		segs = segs[1:]
		switch seg {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, seg)
		if len(segs) == 0 && !followLast {
			return next, nil
		}
		fi, err := c.sftp.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			// Nothing below a missing component exists either, so the rest is literal.
			return path.Join(next, strings.Join(segs, "/")), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("%w: too many levels of symbolic links", ErrBadPath)
		}
		target, err := c.sftp.ReadLink(next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		segs = append(strings.Split(target, "/"), segs...)
	}
	return cur, nil
}
