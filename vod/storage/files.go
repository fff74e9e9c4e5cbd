package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/sftp"
)

// Entry describes one remote file or directory.
type Entry struct {
	Name    string      // base name
	Path    string      // path relative to RemotePath, as Clean returns it
	Size    int64       // bytes
	ModTime time.Time   // modification time (the server keeps whole seconds)
	Mode    fs.FileMode // type bits and permissions; symlinks have fs.ModeSymlink
}

// IsDir reports whether the entry is a directory.
func (e Entry) IsDir() bool { return e.Mode.IsDir() }

func entry(rel string, fi fs.FileInfo) Entry {
	return Entry{Name: path.Base(rel), Path: rel, Size: fi.Size(), ModTime: fi.ModTime(), Mode: fi.Mode()}
}

// opErr wraps err once with the operation and the caller's path.
func opErr(op, rel string, err error) error {
	return fmt.Errorf("storage: %s %q: %w", op, rel, err)
}

// List returns the entries of the directory RemotePath/dir ("." is RemotePath), sorted
// by name. Symlinks are listed as such (not followed).
func (c *Client) List(ctx context.Context, dir string) ([]Entry, error) {
	rel, abs, err := c.cleanResolve(dir, true)
	if err != nil {
		return nil, opErr("list", dir, err)
	}
	infos, err := c.sftp.ReadDirContext(ctx, abs)
	if err != nil {
		if fi, serr := c.sftp.Stat(abs); serr == nil && !fi.IsDir() {
			err = ErrNotDir
		}
		return nil, opErr("list", dir, err)
	}
	out := make([]Entry, 0, len(infos))
	for _, fi := range infos {
		out = append(out, entry(path.Join(rel, fi.Name()), fi))
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ListFiles walks RemotePath/dir recursively and returns every regular file whose name
// ends in ext (case-insensitively; "" matches all), with Path relative to RemotePath,
// sorted by Path. Symlinks are not followed. It checks ctx between directories.
func (c *Client) ListFiles(ctx context.Context, dir, ext string) ([]Entry, error) {
	rel, abs, err := c.cleanResolve(dir, true)
	if err != nil {
		return nil, opErr("list", dir, err)
	}
	if fi, err := c.sftp.Stat(abs); err != nil {
		return nil, opErr("list", dir, err)
	} else if !fi.IsDir() {
		return nil, opErr("list", dir, ErrNotDir)
	}
	var out []Entry
	var walk func(rel, abs string) error
	walk = func(rel, abs string) error {
		infos, err := c.sftp.ReadDirContext(ctx, abs)
		if err != nil {
			return err
		}
		for _, fi := range infos {
			r := path.Join(rel, fi.Name())
			switch {
			case fi.IsDir():
				if err := walk(r, path.Join(abs, fi.Name())); err != nil {
					return err
				}
			case fi.Mode().IsRegular() && hasSuffixFold(fi.Name(), ext):
				out = append(out, entry(r, fi))
			}
		}
		return ctx.Err()
	}
	if err := walk(rel, abs); err != nil {
		return nil, opErr("list", dir, err)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// Stat describes RemotePath/rel, following symlinks that stay inside RemotePath.
func (c *Client) Stat(rel string) (Entry, error) {
	clean, abs, err := c.cleanResolve(rel, true)
	if err != nil {
		return Entry{}, opErr("stat", rel, err)
	}
	fi, err := c.sftp.Stat(abs)
	if err != nil {
		return Entry{}, opErr("stat", rel, err)
	}
	return entry(clean, fi), nil
}

// Open returns a reader of the regular file RemotePath/rel from byte offset, limited to
// limit bytes (negative: to the end). The reader implements io.WriterTo with concurrent
// reads, so io.Copy to an http.ResponseWriter streams at full speed. The caller closes it.
func (c *Client) Open(rel string, offset, limit int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, opErr("open", rel, fmt.Errorf("negative offset %d: %w", offset, fs.ErrInvalid))
	}
	_, abs, err := c.cleanResolve(rel, true)
	if err != nil {
		return nil, opErr("open", rel, err)
	}
	f, err := c.sftp.Open(abs)
	if err != nil {
		return nil, opErr("open", rel, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = ErrIsDir
	}
	if err == nil {
		_, err = f.Seek(offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, opErr("open", rel, err)
	}
	return &reader{f: f, left: limit}, nil
}

// reader is a remote file limited to left bytes (negative: unlimited).
type reader struct {
	f    *sftp.File
	left int64
}

func (r *reader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.left > 0 && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.f.Read(p)
	if r.left > 0 {
		r.left -= int64(n)
	}
	return n, err
}

// WriteTo uses pkg/sftp's concurrent reads; a limit is enforced on the writer side (the
// reads in flight past it, at most a few MiB, are discarded).
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	if r.left < 0 {
		return r.f.WriteTo(w)
	}
	lw := &limitWriter{w: w, left: r.left}
	n, err := r.f.WriteTo(lw)
	r.left -= n
	if errors.Is(err, errLimit) {
		err = nil
	}
	return n, err
}

func (r *reader) Close() error { return r.f.Close() }

var errLimit = errors.New("limit reached")

type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left == 0 {
		return 0, errLimit
	}
	var stop error
	if int64(len(p)) > l.left {
		p, stop = p[:l.left], errLimit
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	if err == nil {
		err = stop
	}
	return n, err
}

// Mkdir creates the directory RemotePath/rel and any missing parents; an existing
// directory is not an error, an existing file is ErrNotDir.
func (c *Client) Mkdir(rel string) error {
	_, abs, err := c.cleanResolve(rel, true)
	if err == nil {
		err = c.mkdirAll(abs)
	}
	if err != nil {
		return opErr("mkdir", rel, err)
	}
	return nil
}

func (c *Client) mkdirAll(abs string) error {
	err := c.sftp.MkdirAll(abs)
	if errors.Is(err, syscall.ENOTDIR) {
		return ErrNotDir
	}
	return err
}

// Rename moves RemotePath/from to RemotePath/to. It fails with fs.ErrExist if to exists
// and does not create missing parents of to. A symlink is renamed itself, not its target.
func (c *Client) Rename(from, to string) error {
	_, fromAbs, err := c.cleanResolve(from, false)
	if err != nil {
		return opErr("rename", from, err)
	}
	_, toAbs, err := c.cleanResolve(to, false)
	if err != nil {
		return opErr("rename", to, err)
	}
	if fromAbs == c.root || toAbs == c.root {
		return opErr("rename", from, fmt.Errorf("%w: the remote root cannot be renamed", ErrBadPath))
	}
	if _, err := c.sftp.Lstat(fromAbs); err != nil {
		return opErr("rename", from, err)
	}
	if _, err := c.sftp.Lstat(toAbs); err == nil {
		return opErr("rename", to, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return opErr("rename", to, err)
	}
	if err := c.sftp.Rename(fromAbs, toAbs); err != nil {
		return opErr("rename", from, err)
	}
	return nil
}

// Remove deletes the file or symlink RemotePath/rel, or the directory: only when empty
// (else ErrNotEmpty) unless recursive is set. RemotePath itself cannot be removed.
// Recursive removal does not follow symlinks.
func (c *Client) Remove(rel string, recursive bool) error {
	_, abs, err := c.cleanResolve(rel, false)
	if err != nil {
		return opErr("remove", rel, err)
	}
	if abs == c.root {
		return opErr("remove", rel, fmt.Errorf("%w: the remote root cannot be removed", ErrBadPath))
	}
	fi, err := c.sftp.Lstat(abs)
	if err != nil {
		return opErr("remove", rel, err)
	}
	switch {
	case !fi.IsDir():
		err = c.sftp.Remove(abs)
	case recursive:
		err = c.sftp.RemoveAll(abs)
	default:
		var infos []fs.FileInfo
		if infos, err = c.sftp.ReadDir(abs); err == nil {
			if len(infos) > 0 {
				err = ErrNotEmpty
			} else {
				err = c.sftp.RemoveDirectory(abs)
			}
		}
	}
	if err != nil {
		return opErr("remove", rel, err)
	}
	return nil
}

// cleanResolve is Clean then resolve.
func (c *Client) cleanResolve(rel string, followLast bool) (clean, abs string, err error) {
	if clean, err = Clean(rel); err != nil {
		return "", "", err
	}
	abs, err = c.resolve(clean, followLast)
	return clean, abs, err
}
