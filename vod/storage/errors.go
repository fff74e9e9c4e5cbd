package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error a [Client] returns wraps at most one of these (test with
// errors.Is); file-system conditions reported by the server keep their io/fs meaning
// (errors.Is(err, fs.ErrNotExist), fs.ErrExist, fs.ErrPermission).
var (
	// ErrBadPath: a path given by the caller is not acceptable (empty, absolute, a ".."
	// segment, a backslash or a control character) or resolves, through a symlink on the
	// server, to a place outside Config.RemotePath. HTTP handlers answer 400.
	ErrBadPath = errors.New("storage: bad path")
	// ErrAuth: the server refused the username with every credential offered.
	ErrAuth = errors.New("storage: authentication failed")
	// ErrHostKeyMismatch: the server presented a host key other than the pinned
	// Config.HostKey. The concrete error is a [*HostKeyMismatchError].
	ErrHostKeyMismatch = errors.New("storage: host key mismatch")
	// ErrConfig: the Config is unusable (no host, no credentials, an unparsable key).
	ErrConfig = errors.New("storage: invalid config")
	// ErrSizeMismatch: after a transfer the remote size differs from the local size, so
	// the file was not renamed into place.
	ErrSizeMismatch = errors.New("storage: remote size differs from local size")
	// ErrNotDir: a directory was expected.
	ErrNotDir = errors.New("storage: not a directory")
	// ErrIsDir: a regular file was expected.
	ErrIsDir = errors.New("storage: is a directory")
	// ErrNotEmpty: Remove of a non-empty directory without the recursive flag.
	ErrNotEmpty = errors.New("storage: directory not empty")
	// ErrRemotePath: Config.RemotePath is missing, not a directory or not writable
	// (reported by [Test]).
	ErrRemotePath = errors.New("storage: remote path unusable")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("storage: client closed")
)

// HostKeyMismatchError is returned by [Dial] and [Test] when the server's host key is not
// the pinned one. It names both SHA256 fingerprints and matches [ErrHostKeyMismatch].
type HostKeyMismatchError struct {
	Expected     string  // fingerprint of Config.HostKey, "SHA256:..."
	Presented    string  // fingerprint of the key the server presented
	PresentedKey HostKey // the key itself, for a user who decides to pin it instead
}

// Error implements error.
func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("storage: host key mismatch: expected %s, server presented %s", e.Expected, e.Presented)
}

// Unwrap makes errors.Is(err, ErrHostKeyMismatch) true.
func (e *HostKeyMismatchError) Unwrap() error { return ErrHostKeyMismatch }
