package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/pkg/sftp"
)

// PartSuffix is appended to a file's remote name while it is being written; the file is
// renamed to its final name only once complete.
const PartSuffix = ".part"

const (
	// headCheck and tailCheck bound the bytes of an existing .part that Upload reads back
	// and compares with the local file before resuming. The tail window covers the writes
	// that may have been in flight when the last attempt broke: pkg/sftp sends up to 64
	// concurrent 32 KiB writes and a server may apply them out of order (pkg/sftp's own
	// server does), leaving a hole below the .part's size. The head catches a local file
	// that was replaced since.
	headCheck = 64 << 10
	tailCheck = 4 << 20
	// cancelGrace is how long a cancelled transfer may take to stop cleanly (the writes
	// in flight being answered) before the connection is closed under it.
	cancelGrace = 2 * time.Second
)

// Result describes one Upload.
type Result struct {
	Remote  string // the cleaned path relative to RemotePath
	Size    int64  // local file size, and the remote size on success
	Sent    int64  // bytes sent by this call
	Resumed int64  // offset this call resumed from (0: from the start)
	Skipped bool   // the final file already existed with the local size: nothing was sent
}

// Upload copies the local file localPath to RemotePath/remoteRel, atomically and
// resumably:
//
//   - if the final file already exists with the local size, nothing is sent (Skipped), so
//     repeating an Upload after a crash never uploads a file twice;
//   - otherwise the data goes to remoteRel+".part", continuing from the size the .part
//     already has (after reading back its first 64 KiB and last 4 MiB and comparing them
//     with the local file; from the first differing byte if they differ);
//   - once the .part has the local size it is fsynced (when the server supports
//     fsync@openssh.com) and renamed over the final name (posix-rename@openssh.com, else
//     remove and rename), so readers never see a partial file under the final name.
//
// Parent directories are created. The local file must not change during the call. When
// ctx ends the transfer stops; if the server does not answer the writes in flight within
// two seconds, the connection is closed and the Client becomes unusable.
func (c *Client) Upload(ctx context.Context, localPath, remoteRel string) (Result, error) {
	res, err := c.upload(ctx, localPath, remoteRel)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return res, fmt.Errorf("storage: upload %q: %w", remoteRel, err)
	}
	return res, nil
}

func (c *Client) upload(ctx context.Context, localPath, remoteRel string) (Result, error) {
	var res Result
	if err := ctx.Err(); err != nil {
		return res, err
	}
	rel, err := Clean(remoteRel)
	if err != nil {
		return res, err
	}
	res.Remote = rel
	if rel == "." {
		return res, fmt.Errorf("%w: upload target is the remote root", ErrBadPath)
	}
	lf, err := os.Open(localPath)
	if err != nil {
		return res, err
	}
	defer lf.Close()
	lst, err := lf.Stat()
	if err != nil {
		return res, err
	}
	if !lst.Mode().IsRegular() {
		return res, fmt.Errorf("%w: local %s is not a regular file", ErrIsDir, localPath)
	}
	res.Size = lst.Size()

	final, err := c.resolve(rel, true)
	if err != nil {
		return res, err
	}
	part := final + PartSuffix
	fi, err := c.sftp.Stat(final)
	switch {
	case err == nil && fi.IsDir():
		return res, ErrIsDir
	case err == nil && fi.Size() == res.Size:
		res.Skipped = true
		// A .part beside a complete file is a leftover (another writer finished first).
		if pfi, err := c.sftp.Lstat(part); err == nil && pfi.Mode().IsRegular() {
			_ = c.sftp.Remove(part)
		}
		return res, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return res, err
	}
	if err := c.mkdirAll(path.Dir(final)); err != nil {
		return res, err
	}
	partSize, err := c.partSize(part)
	if err != nil {
		return res, err
	}
	offset := int64(0)
	if partSize > 0 && partSize <= res.Size {
		if offset, err = c.resumeOffset(lf, part, partSize); err != nil {
			return res, err
		}
	}
	res.Resumed = offset

	flags := os.O_WRONLY | os.O_CREATE // never O_APPEND: see doc.go
	if offset == 0 {
		flags |= os.O_TRUNC
	}
	rf, err := c.sftp.OpenFile(part, flags)
	if err != nil {
		return res, err
	}
	if offset > 0 && offset < partSize {
		if err := rf.Truncate(offset); err != nil {
			rf.Close()
			return res, err
		}
	}
	if _, err := lf.Seek(offset, io.SeekStart); err != nil {
		rf.Close()
		return res, err
	}
	res.Sent, err = c.send(ctx, rf, offset, io.LimitReader(lf, res.Size-offset))
	if err != nil {
		return res, err
	}
	if err := c.finish(part, final, res.Size); err != nil {
		return res, err
	}
	return res, nil
}

// WriteFile writes everything r yields to RemotePath/rel, atomically: into rel+".part",
// then, when the remote size matches the bytes read, renamed over rel. Parent directories
// are created. On failure the .part is removed (best effort). It returns the bytes written.
func (c *Client) WriteFile(ctx context.Context, rel string, r io.Reader) (int64, error) {
	n, err := c.writeFile(ctx, rel, r)
	if err != nil {
		return n, fmt.Errorf("storage: write %q: %w", rel, err)
	}
	return n, nil
}

func (c *Client) writeFile(ctx context.Context, rel string, r io.Reader) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	final, err := c.resolve(rel, true)
	if err != nil {
		return 0, err
	}
	if final == c.root {
		return 0, fmt.Errorf("%w: write target is the remote root", ErrBadPath)
	}
	if fi, err := c.sftp.Stat(final); err == nil && fi.IsDir() {
		return 0, ErrIsDir
	}
	if err := c.mkdirAll(path.Dir(final)); err != nil {
		return 0, err
	}
	part := final + PartSuffix
	if _, err := c.partSize(part); err != nil {
		return 0, err
	}
	rf, err := c.sftp.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return 0, err
	}
	n, err := c.send(ctx, rf, 0, r)
	if err == nil {
		err = c.finish(part, final, n)
	}
	if err != nil {
		_ = c.sftp.Remove(part)
		return n, err
	}
	return n, nil
}

// partSize returns the size of an existing .part (0 if there is none) and refuses a .part
// that is not a regular file: a symlink there would redirect the write.
func (c *Client) partSize(part string) (int64, error) {
	fi, err := c.sftp.Lstat(part)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, err
	case !fi.Mode().IsRegular():
		return 0, fmt.Errorf("%w: %s exists and is not a regular file", ErrBadPath, path.Base(part))
	}
	return fi.Size(), nil
}

// send streams src into rf from offset with concurrent writes, syncs and closes rf.
func (c *Client) send(ctx context.Context, rf *sftp.File, offset int64, src io.Reader) (int64, error) {
	if _, err := rf.Seek(offset, io.SeekStart); err != nil {
		rf.Close()
		return 0, err
	}
	stop := c.watch(ctx)
	// ReadFromWithConcurrency, not ReadFrom: ReadFrom writes sequentially unless it can
	// learn the reader's size, which the context wrapper hides.
	n, err := rf.ReadFromWithConcurrency(ctxReader{ctx: ctx, r: src}, 0)
	if err == nil && c.fsync {
		err = rf.Sync()
	}
	if cerr := rf.Close(); err == nil {
		err = cerr
	}
	stop()
	return n, err
}

// finish checks the .part's size and renames it over final.
func (c *Client) finish(part, final string, size int64) error {
	fi, err := c.sftp.Stat(part)
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("%w: remote %d bytes, local %d", ErrSizeMismatch, fi.Size(), size)
	}
	return c.replace(part, final)
}

// replace renames from over to, replacing to if it exists.
func (c *Client) replace(from, to string) error {
	if c.posixRename {
		return c.sftp.PosixRename(from, to)
	}
	// SFTPv3 RENAME fails when the target exists: remove it first. Not atomic, but only
	// reached on servers without posix-rename@openssh.com.
	err := c.sftp.Rename(from, to)
	if err == nil {
		return nil
	}
	if _, serr := c.sftp.Lstat(to); serr != nil {
		return err
	}
	if err := c.sftp.Remove(to); err != nil {
		return err
	}
	return c.sftp.Rename(from, to)
}

// resumeOffset compares the .part's head and tail with the local file and returns the
// offset up to which the .part is known to hold the local bytes.
func (c *Client) resumeOffset(lf *os.File, part string, partSize int64) (int64, error) {
	rf, err := c.sftp.Open(part)
	if err != nil {
		return 0, err
	}
	defer rf.Close()
	head := min(partSize, headCheck)
	if at, err := firstDiff(rf, lf, 0, head); err != nil || at < head {
		return 0, err
	}
	return firstDiff(rf, lf, max(head, partSize-tailCheck), partSize)
}

// firstDiff returns the first offset in [from, to) where a and b differ, or to.
func firstDiff(a, b io.ReaderAt, from, to int64) (int64, error) {
	const chunk = 256 << 10
	bufA, bufB := make([]byte, chunk), make([]byte, chunk)
	for off := from; off < to; off += chunk {
		n := int(min(chunk, to-off))
		if _, err := readFullAt(a, bufA[:n], off); err != nil {
			return 0, err
		}
		if _, err := readFullAt(b, bufB[:n], off); err != nil {
			return 0, err
		}
		if !bytes.Equal(bufA[:n], bufB[:n]) {
			for i := range n {
				if bufA[i] != bufB[i] {
					return off + int64(i), nil
				}
			}
		}
	}
	return to, nil
}

func readFullAt(r io.ReaderAt, p []byte, off int64) (int, error) {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// watch closes the connection if ctx ends and the transfer has not stopped cancelGrace
// later. The returned func stops the watch and waits for its goroutine.
func (c *Client) watch(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(cancelGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			c.abort()
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// ctxReader fails reads once ctx is done, which stops pkg/sftp's ReadFrom at the next
// packet.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
