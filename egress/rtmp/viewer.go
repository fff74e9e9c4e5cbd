package rtmp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/yutopp/go-rtmp/message"
)

// Batching limits of one write.
const (
	maxBatchBytes = 256 << 10
	maxBatchMsgs  = 512
)

// errStalled ends a viewer whose socket took nothing for WriteTimeout.
var errStalled = errors.New("viewer stalled")

// viewer is one RTMP player: a position in its feed's ring, driven by the Play call's
// goroutine. Writes gather every ready message into one writev (TLS: one Write).
type viewer struct {
	s    *Server
	f    *feed
	conn net.Conn
	tcp  bool
	msid uint32
	wake chan struct{}

	pos     uint64
	needKey bool
	tracks  *tracks // the track set whose sequence headers the viewer has

	iov     [][]byte // this batch's buffers
	hdr     []byte   // bytes written for this viewer only (start, headers, patched ids)
	scratch []byte   // TLS: the batch in one buffer

	deadlineSet time.Time
	started     time.Time
	firstWrite  time.Duration // from Play to the first media write
	sent        uint64
	skips       int
	skipped     uint64
}

func newViewer(s *Server, f *feed, conn net.Conn, msid uint32) *viewer {
	v := &viewer{s: s, f: f, conn: conn, msid: msid, wake: make(chan struct{}, 1), started: time.Now()}
	_, v.tcp = conn.(*net.TCPConn)
	s.mu.Lock()
	f.attach(v)
	s.mu.Unlock()
	// Start at the newest keyframe the ring holds, else wait for the next one.
	head, k := f.head.Load(), f.key.Load()
	if k > 0 && head-(k-1) < ringSize-ringSize/8 {
		v.pos = k - 1
	} else {
		v.pos, v.needKey = head, true
	}
	return v
}

// run answers the play command and sends the stream until the viewer leaves (the read side
// fails), the stream ends or ctx is cancelled.
func (v *viewer) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The client sends little after play (acknowledgements, buffer length, maybe
	// deleteStream); it is read and dropped. A read error means the viewer left.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 2048)
		for {
			if _, err := v.conn.Read(buf); err != nil {
				cancel(err)
				return
			}
		}
	}()
	defer func() {
		_ = v.conn.SetReadDeadline(time.Unix(1, 0)) // unblocks the reader
		<-drained
	}()

	v.hdr = appendSetChunkSize(v.hdr)
	v.hdr = appendUserControl(v.hdr, eventStreamBegin, v.msid)
	v.hdr = appendOnStatus(v.hdr, v.msid, "status", "NetStream.Play.Reset", "Playing and resetting.")
	v.hdr = appendOnStatus(v.hdr, v.msid, "status", message.NetStreamOnStatusCodePlayStart, "Started playing.")
	v.hdr = appendMessage(v.hdr, csidData, typeDataAMF0, v.msid, 0,
		amf0Values("|RtmpSampleAccess", true, true), nil)
	v.iov = append(v.iov, v.hdr)
	for {
		v.collect()
		if len(v.iov) > 0 {
			if err := v.flush(); err != nil {
				if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
					return c
				}
				return err
			}
			continue
		}
		select {
		case <-v.wake:
		case <-v.f.done:
			if v.pos < v.f.head.Load() {
				continue // drain what the pump left
			}
			v.end()
			return fmt.Errorf("%w (%v)", ErrStreamEnded, v.f.err)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// collect gathers the ready messages into v.iov.
func (v *viewer) collect() {
	f := v.f
	bytes := 0
	for _, b := range v.iov {
		bytes += len(b)
	}
	for len(v.iov) < maxBatchMsgs && bytes < maxBatchBytes {
		head := f.head.Load()
		if v.pos >= head {
			return
		}
		if head-v.pos >= ringSize-ringSize/8 {
			v.skip(head) // overtaken by the ring
			continue
		}
		e := f.ring[v.pos&f.mask].Load()
		// The pump stores a slot before it moves head, so e is entry v.pos unless the pump
		// reached v.pos+ringSize meanwhile.
		if f.head.Load()-v.pos >= ringSize {
			continue
		}
		if e == nil {
			v.pos++
			continue
		}
		if !v.needKey && f.out.Load()-e.off > uint64(v.s.cfg.MaxQueuedBytes) && f.key.Load() > v.pos+1 {
			v.skip(head) // too far behind the live edge
			continue
		}
		v.pos++
		if v.needKey {
			if !e.key {
				continue
			}
			v.needKey = false
		}
		if e.tracks != v.tracks {
			start := len(v.hdr)
			v.hdr = e.tracks.appendHeaders(v.hdr, v.msid, e.ts, v.tracks == nil, "")
			v.tracks = e.tracks
			v.iov = append(v.iov, v.hdr[start:len(v.hdr):len(v.hdr)])
			bytes += len(v.hdr) - start
		}
		data := e.data
		if v.msid != feedStreamID {
			// The message stream id is in the type-0 header only (bytes 8..11).
			start := len(v.hdr)
			v.hdr = append(v.hdr, data[:12]...)
			binary.LittleEndian.PutUint32(v.hdr[start+8:], v.msid)
			v.iov = append(v.iov, v.hdr[start:len(v.hdr):len(v.hdr)])
			data = data[12:]
		}
		v.iov = append(v.iov, data)
		bytes += len(e.data)
	}
}

// skip moves a viewer that fell behind to the newest keyframe still well inside the ring,
// or else to the live edge to wait for the next keyframe. It is counted and logged.
func (v *viewer) skip(head uint64) {
	target := head
	if k := v.f.key.Load(); k > 0 && k-1 > v.pos && head-(k-1) < ringSize-ringSize/8 {
		target = k - 1
	}
	n := target - v.pos
	v.pos, v.needKey = target, true
	v.skips++
	v.skipped += n
	v.s.noteSkip(v.f, n)
}

// flush writes the batch: writev on TCP, a gathered copy in pieces over TLS. The viewer is
// stalled when the socket accepts no byte for WriteTimeout (the deadline is pushed back on
// progress, and at most once a second otherwise: it costs a timer update).
func (v *viewer) flush() error {
	if v.firstWrite == 0 && v.tracks != nil {
		v.firstWrite = time.Since(v.started) // the first frame goes to the socket now
	}
	var err error
	if v.tcp {
		bufs := net.Buffers(v.iov)
		for len(bufs) > 0 {
			v.refreshDeadline(false)
			var n int64
			n, err = bufs.WriteTo(v.conn)
			v.sent += uint64(n)
			v.s.bytesOut.Add(uint64(n))
			if err == nil || n == 0 || !isTimeout(err) {
				break
			}
			v.refreshDeadline(true) // slow but moving: not stalled
		}
	} else {
		v.scratch = v.scratch[:0]
		for _, b := range v.iov {
			v.scratch = append(v.scratch, b...)
		}
		// A TLS connection is broken after a write timeout: write in pieces, each with a
		// full deadline, so that a slow viewer is not taken for a stalled one.
		for p := v.scratch; len(p) > 0 && err == nil; {
			k := min(len(p), 64<<10)
			v.refreshDeadline(true)
			var n int
			n, err = v.conn.Write(p[:k])
			v.sent += uint64(n)
			v.s.bytesOut.Add(uint64(n))
			p = p[k:]
		}
		if cap(v.scratch) > 2*maxBatchBytes {
			v.scratch = nil
		}
	}
	clear(v.iov)
	v.iov = v.iov[:0]
	v.hdr = v.hdr[:0]
	if err != nil {
		if isTimeout(err) {
			v.s.disconnected.Add(1)
			return fmt.Errorf("%w: no byte accepted for %s", errStalled, v.s.cfg.WriteTimeout)
		}
		return err
	}
	return nil
}

func (v *viewer) refreshDeadline(force bool) {
	now := time.Now()
	if force || now.Sub(v.deadlineSet) >= time.Second {
		_ = v.conn.SetWriteDeadline(now.Add(v.s.cfg.WriteTimeout))
		v.deadlineSet = now
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// end tells the player that the stream is over (best effort).
func (v *viewer) end() {
	b := appendOnStatus(v.hdr[:0], v.msid, "status", "NetStream.Play.UnpublishNotify", "Stream ended.")
	b = appendUserControl(b, eventStreamEOF, v.msid)
	_ = v.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = v.conn.Write(b)
}
