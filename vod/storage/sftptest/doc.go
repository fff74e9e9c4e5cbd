// Package sftptest runs a real SFTP server on 127.0.0.1 for tests, over real TCP:
// Debian's OpenSSH sshd started unprivileged (as whatever user runs the tests, root
// included) with a temporary configuration, or an in-process server built on
// golang.org/x/crypto/ssh and pkg/sftp that also accepts a password.
//
// Each Server has its own free port, its own generated ed25519 host key and client key,
// and a temporary directory ([Server.Root]) to use as the storage's remote path. [Server.Stop]
// takes the server down, breaking every open connection, and [Server.Restart] brings it
// back on the same port with the same keys, to test clients against an outage. The
// server is stopped and its files removed when the test ends.
//
// sshd needs Debian's openssh-server (/usr/sbin/sshd; deploy/test.sh installs it); Start
// fails the test, never skips it, when it is missing. Run as root, sshd needs the
// privilege separation directory /run/sshd, which Start creates. sshd refuses accounts
// it considers locked (the user "nobody" is one): run the tests as a normal user or root.
//
// It is a non-test package so that the tests of every package (vod/storage, the vod
// uploader, the API) can use it; it must not be imported by production code.
package sftptest
