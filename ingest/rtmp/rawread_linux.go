//go:build linux

package rtmp

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawReader reads a TCP socket with a raw read(2) once the poller says it is readable.
//
// Why: net.Conn.Read makes its (non-blocking) read(2) through syscall.Read, which tells the
// Go scheduler that a system call starts; when the runtime's monitor thread (sysmon) sleeps
// because every P was idle, that wakes it, and it then polls every 20 µs until the process
// is idle again. A publisher's connection goes idle and wakes up again for every burst the
// encoder writes (ffmpeg: every audio and video packet, in 128-byte chunks), so with one
// 4.7 Mbps publisher sysmon's wake-ups and naps were about half of the process's context
// switches. A read on a non-blocking socket never blocks, so it needs no scheduler hand-off:
// the poller still parks the goroutine while nothing is there.
type rawReader struct {
	rc    syscall.RawConn
	read  func(fd uintptr) bool // r.readFD, bound once so that Read does not allocate
	b     []byte
	n     int
	errno syscall.Errno
}

// newRawReader returns a raw reader of c, or nil when c is not a TCP connection.
func newRawReader(c net.Conn) *rawReader {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawReader{rc: rc}
	r.read = r.readFD
	return r
}

// Read reads like net.Conn.Read: it waits for data (honouring the read deadline) and returns
// io.EOF at the end of the stream.
func (r *rawReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.b = b
	err := r.rc.Read(r.read)
	r.b = nil
	switch {
	case err != nil:
		return 0, err
	case r.errno != 0:
		return 0, os.NewSyscallError("read", r.errno)
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

// readFD is called by the poller with the socket; false means "not readable yet: wait".
func (r *rawReader) readFD(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.b[0])), uintptr(len(r.b)))
		switch e {
		case 0:
			r.n, r.errno = int(n), 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			r.n, r.errno = 0, e
			return true
		}
	}
}
