package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
)

// TestResult is what [Test] learned about a storage configuration.
type TestResult struct {
	HostKey     string // the server's host key in authorized_keys format, to pin
	Fingerprint string // its SHA256 fingerprint ("SHA256:...")
	RemotePath  string // RemotePath as resolved on the server (absolute, symlinks resolved)
	MKVFiles    int    // .mkv files found below RemotePath, recursively
}

// Test checks a storage configuration for POST /api/vods/storage/test: it dials (the host
// key check and authentication included), checks that RemotePath exists, is a directory
// and is writable (by creating and removing a small temporary file) and counts the .mkv
// files below it. Once connected, the result carries the host key and its fingerprint
// even when a later check fails, so the caller can show what to pin.
func Test(ctx context.Context, cfg Config) (TestResult, error) {
	var res TestResult
	c, err := Dial(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer c.Close()
	res.HostKey, res.Fingerprint = c.HostKey().String(), c.HostKey().Fingerprint()
	res.RemotePath = c.Root()

	fi, err := c.sftp.Stat(c.root)
	switch {
	case err != nil:
		return res, fmt.Errorf("%w: %s: %v", ErrRemotePath, c.root, err)
	case !fi.IsDir():
		return res, fmt.Errorf("%w: %s: not a directory", ErrRemotePath, c.root)
	}
	var token [8]byte
	_, _ = rand.Read(token[:])
	probe := path.Join(c.root, ".relaycast-write-test-"+hex.EncodeToString(token[:]))
	f, err := c.sftp.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return res, fmt.Errorf("%w: %s: not writable: %v", ErrRemotePath, c.root, err)
	}
	_, werr := f.Write([]byte("relaycast\n"))
	cerr := f.Close()
	rerr := c.sftp.Remove(probe)
	for _, err := range []error{werr, cerr, rerr} {
		if err != nil {
			return res, fmt.Errorf("%w: %s: write test: %v", ErrRemotePath, c.root, err)
		}
	}
	files, err := c.ListFiles(ctx, ".", ".mkv")
	if err != nil {
		return res, err
	}
	res.MKVFiles = len(files)
	return res, nil
}
