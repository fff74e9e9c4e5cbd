// Package storage is the client of a user's remote VOD storage over SFTP (pkg/sftp over
// golang.org/x/crypto/ssh). It owns the connection, the host-key policy, the path policy
// and the upload protocol; it knows nothing of recordings, journals, retries or HTTP —
// the vod uploader and the API handlers build on it.
//
// # Connection and host key
//
// [Dial] authenticates with a password (also as keyboard-interactive) and/or a private
// key. With Config.HostKey empty the first key the server presents is trusted and
// reported by [Client.HostKey] (authorized_keys format and SHA256 fingerprint) for the
// caller to store; once pinned, another key fails with [*HostKeyMismatchError]
// (ErrHostKeyMismatch) naming both fingerprints. A refused login is [ErrAuth]. No error
// and no formatted [Config] contains the password, passphrase or key.
//
// A [Client] is one SSH connection with one SFTP session, safe for concurrent use. It sends
// SSH keepalives: a server that stops answering makes the connection close, so nothing
// blocks forever on a vanished server. A broken Client stays broken (every call fails):
// the caller Dials again, typically with backoff. [Client.Close] may be called twice and
// waits for the Client's goroutines.
//
// # Paths
//
// Every path a caller passes is relative to Config.RemotePath. [Clean] rejects empty and
// absolute paths, ".." segments, backslashes, control characters and invalid UTF-8 with
// [ErrBadPath]; before each operation the path is then resolved on the server, symlink by
// symlink (Lstat and ReadLink, because pkg/sftp's server answers REALPATH without
// resolving links), and refused with ErrBadPath when it leads outside RemotePath. Handlers
// map ErrBadPath to HTTP 400. A missing file is fs.ErrNotExist; Rename onto an existing
// path is fs.ErrExist.
//
// # Uploads: atomic, resumable, never twice
//
// [Client.Upload] writes RemotePath/rel+".part" and renames it to its final name only
// when the remote size equals the local size (after an fsync when the server offers
// fsync@openssh.com), with posix-rename@openssh.com when offered. A final file that
// already has the local size is not sent again (Result.Skipped): after a crash the caller
// simply uploads everything again. A .part left by a broken attempt is continued from its
// remote size — with Stat and Seek on both sides, never O_APPEND, which silently
// corrupted files against pkg/sftp's server — after its first 64 KiB and last 4 MiB were
// read back and compared with the local file. The tail check matters: concurrent writes
// (up to 64 × 32 KiB in flight) may be applied out of order by a server, so a broken
// transfer can leave a hole below the .part's size; resuming restarts at the first byte
// that differs. [Client.WriteFile] is the same for a stream (no resume).
//
// # Blocking and cancellation
//
// Every method blocks on network round trips. Upload and WriteFile stop reading when
// their context ends; if the writes already in flight are not answered within two
// seconds the connection is closed under them (the Client is then broken). Other methods
// are bounded by the keepalive. [Test] backs POST /api/vods/storage/test.
package storage
