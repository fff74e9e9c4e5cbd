package rtmpguard

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"

	gortmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"
)

// readConn is the client side as the server reads it: bytes from r, at most step per Read.
type readConn struct {
	net.Conn // nil: only Read is called
	r        io.Reader
	step     int
}

func (c *readConn) Read(b []byte) (int, error) { return c.r.Read(b[:min(len(b), c.step)]) }

// basicHeader encodes a chunk basic header (specification §5.3.1.1).
func basicHeader(fmtType byte, csid int) []byte {
	switch {
	case csid < 64:
		return []byte{fmtType<<6 | byte(csid)}
	case csid < 320:
		return []byte{fmtType << 6, byte(csid - 64)}
	default:
		return []byte{fmtType<<6 | 1, byte((csid - 64) & 0xff), byte((csid - 64) >> 8)}
	}
}

// msg frames one message as go-rtmp's reader expects it: a type-0 header (with an extended
// timestamp when ts needs one) and type-3 headers before the following chunks.
func msg(csid int, typeID byte, streamID uint32, ts uint32, body []byte, chunkSize int) []byte {
	b := basicHeader(0, csid)
	ts24 := min(ts, 0xffffff)
	b = append(b, byte(ts24>>16), byte(ts24>>8), byte(ts24))
	b = append(b, byte(len(body)>>16), byte(len(body)>>8), byte(len(body)), typeID)
	b = binary.LittleEndian.AppendUint32(b, streamID)
	if ts24 == 0xffffff {
		b = binary.BigEndian.AppendUint32(b, ts)
	}
	for i := 0; i < len(body); i += chunkSize {
		if i > 0 {
			b = append(b, basicHeader(3, csid)...)
		}
		b = append(b, body[i:min(i+chunkSize, len(body))]...)
	}
	return b
}

// chunk frames one chunk with a header of type fmtType (length and type for types 0 and 1).
func chunk(fmtType byte, csid int, length int, typeID byte, payload []byte) []byte {
	b := basicHeader(fmtType, csid)
	switch fmtType {
	case 0:
		b = append(b, 0, 0, 0, byte(length>>16), byte(length>>8), byte(length), typeID, 0, 0, 0, 0)
	case 1:
		b = append(b, 0, 0, 0, byte(length>>16), byte(length>>8), byte(length), typeID)
	case 2:
		b = append(b, 0, 0, 0)
	}
	return append(b, payload...)
}

// cont frames payload as continuation chunks (type-3 headers) of chunk stream csid.
func cont(csid int, payload []byte, chunkSize int) []byte {
	var b []byte
	for i := 0; i < len(payload); i += chunkSize {
		b = append(b, basicHeader(3, csid)...)
		b = append(b, payload[i:min(i+chunkSize, len(payload))]...)
	}
	return b
}

func setChunkSize(n uint32) []byte {
	return msg(2, typeSetChunkSize, 0, 0, binary.BigEndian.AppendUint32(nil, n), 128)
}

var handshake = bytes.Repeat([]byte{3}, handshakeLen) // C0 = 3, then C1 and C2

func connectBody(t testing.TB, extra ...byte) []byte {
	// {app: "live", tcUrl: ..., x: <extra>} with the properties framed by hand, so that
	// extra can be malformed.
	b := amf(t, "connect", 1)
	b = append(b, cat(markerObject, "app", markerString, "live", "tcUrl", markerString, "rtmp://127.0.0.1/live")...)
	if len(extra) > 0 {
		b = append(b, cat("x", extra)...)
	}
	return append(b, objEnd...)
}

var (
	hugeStrict = cat(markerStrictArray, u32(0x7fffffff))
	hugeECMA   = cat(markerECMAArray, u32(0xffffffff), objEnd)
)

// guardCases are client streams after the handshake; want is nil or the error Read ends with.
func guardCases(t testing.TB) []struct {
	name   string
	stream []byte
	want   error
} {
	video := bytes.Repeat([]byte{0x17, 1, 0, 0, 0}, 300)
	good := connectBody(t)
	bad := connectBody(t, hugeStrict...)
	big := connectBody(t, cat(markerString, strings.Repeat("x", 1000))...)
	bigBad := connectBody(t, cat(markerString, strings.Repeat("x", 1000), markerStrictArray, u32(1<<30))...)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	// Two interleaved messages: csid 4 (video, 300 bytes) and csid 5 (a 200-byte command).
	mid := connectBody(t, cat(markerString, strings.Repeat("x", 120))...)
	midBad := connectBody(t, cat(markerString, strings.Repeat("x", 115), markerStrictArray, u32(1<<30))...)
	interleaved := func(cmd []byte) []byte {
		v := video[:300]
		return join(chunk(0, 4, len(v), 9, v[:128]), chunk(0, 5, len(cmd), typeCommandAMF0, cmd[:128]),
			chunk(3, 4, 0, 0, v[128:256]), chunk(3, 5, 0, 0, cmd[128:]), chunk(3, 4, 0, 0, v[256:]))
	}
	// A message whose chunks repeat its header (types 0, 1, 2) instead of type 3.
	repeated := func(cmd []byte) []byte {
		return join(chunk(0, 3, len(cmd), typeCommandAMF0, cmd[:128]),
			chunk(1, 3, len(cmd), typeCommandAMF0, cmd[128:256]), chunk(2, 3, 0, 0, cmd[256:384]),
			chunk(0, 3, len(cmd), typeCommandAMF0, cmd[384:512]), cont(3, cmd[512:], 128))
	}
	metaBad := append(amf(t, "onMetaData"), hugeStrict...)
	setDataFrameBad := append(amf(t, "@setDataFrame", "onMetaData"), hugeStrict...)
	return []struct {
		name   string
		stream []byte
		want   error
	}{
		{"connect", msg(3, typeCommandAMF0, 0, 0, good, 128), nil},
		{"connect with huge strict array", msg(3, typeCommandAMF0, 0, 0, bad, 128), ErrMalformed},
		{"connect with huge ecma array", msg(3, typeCommandAMF0, 0, 0, connectBody(t, hugeECMA...), 128), ErrMalformed},
		{"connect in many chunks", msg(3, typeCommandAMF0, 0, 0, big, 128), nil},
		{"bad connect in many chunks", msg(3, typeCommandAMF0, 0, 0, bigBad, 128), ErrMalformed},
		{"command name is an object", msg(3, typeCommandAMF0, 0, 0, cat(markerObject, "k", markerNull, objEnd, markerNumber, make([]byte, 8)), 128), ErrMalformed},
		{"amf3 command", msg(3, typeCommandAMF3, 0, 0, append([]byte{0}, bad...), 128), ErrMalformed},
		{"amf3 data", msg(3, typeDataAMF3, 0, 0, append([]byte{0}, metaBad...), 128), ErrMalformed},
		{"media", join(msg(4, 9, 1, 0, video, 128), msg(4, 8, 1, 20, video[:40], 128)), nil},
		{"data message", msg(4, typeDataAMF0, 1, 0, metaBad, 128), ErrMalformed},
		{"@setDataFrame is left to the handler", msg(4, typeDataAMF0, 1, 0, setDataFrameBad, 128), nil},
		{"chunk size 4096", join(setChunkSize(4096), msg(3, typeCommandAMF0, 0, 0, big, 4096)), nil},
		{"bad command in one 4096-byte chunk", join(setChunkSize(4096), msg(3, typeCommandAMF0, 0, 0, bigBad, 4096)), ErrMalformed},
		{"chunk size above go-rtmp's maximum", join(setChunkSize(0x7fffffff), msg(3, typeCommandAMF0, 0, 0, bigBad, 1<<20)), ErrMalformed},
		{"chunk size 1", join(setChunkSize(1), msg(3, typeCommandAMF0, 0, 0, bad, 1)), ErrMalformed},
		{"chunk size 0", setChunkSize(0), ErrChunkStream},
		{"chunk size top bit", setChunkSize(0x80000080), ErrChunkStream},
		{"chunk size short", msg(2, typeSetChunkSize, 0, 0, []byte{0, 0, 1}, 128), ErrChunkStream},
		{"chunk size on stream 1", msg(2, typeSetChunkSize, 1, 0, []byte{0, 0, 16, 0}, 128), ErrChunkStream},
		{"length 0", chunk(0, 3, 0, typeCommandAMF0, nil), ErrChunkStream},
		{"type 3 on a new chunk stream", chunk(3, 3, 0, 0, bad), ErrChunkStream},
		{"header changes the message in progress", join(chunk(0, 3, len(big), typeCommandAMF0, big[:128]),
			chunk(1, 3, len(bad), typeCommandAMF0, bad)), ErrChunkStream},
		{"headers repeated mid-message", repeated(big), nil},
		{"headers repeated mid-message, bad", repeated(bigBad), ErrMalformed},
		{"type 1 and 2 headers inherit", join(chunk(0, 3, len(good), typeCommandAMF0, good),
			chunk(1, 3, len(bad), typeCommandAMF0, bad)), ErrMalformed},
		{"type 3 repeats the last message", join(msg(3, typeCommandAMF0, 0, 0, good, 128),
			chunk(3, 3, 0, 0, good)), nil},
		{"extended timestamp", msg(3, typeCommandAMF0, 0, 0x01000000, bigBad, 128), ErrMalformed},
		{"2-byte chunk stream id", msg(200, typeCommandAMF0, 0, 0, bad, 128), ErrMalformed},
		{"3-byte chunk stream id", msg(65599, typeCommandAMF0, 0, 0, good, 128), ErrChunkStream},
		{"interleaved", interleaved(mid), nil},
		{"interleaved bad", interleaved(midBad), ErrMalformed},
		{"abort is ignored", join(chunk(0, 3, len(bigBad), typeCommandAMF0, bigBad[:128]),
			msg(2, 2, 0, 0, []byte{0, 0, 0, 3}, 128), cont(3, bigBad[128:], 128)), ErrMalformed},
		{"64 chunk streams", func() []byte {
			var b []byte
			for i := range 64 {
				b = append(b, msg(3+i, 9, 1, 0, video[:10], 128)...)
			}
			return b
		}(), nil},
		{"65 chunk streams", func() []byte {
			var b []byte
			for i := range 65 {
				b = append(b, msg(3+i, 9, 1, 0, video[:10], 128)...)
			}
			return b
		}(), ErrChunkStream},
	}
}

func TestConn(t *testing.T) {
	cases := guardCases(t)
	for _, tc := range cases {
		for _, step := range []int{1, 7, 4096} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, step), func(t *testing.T) {
				in := append(append([]byte(nil), handshake...), tc.stream...)
				c := NewConn(&readConn{r: bytes.NewReader(in), step: step})
				var out bytes.Buffer
				_, err := io.Copy(&out, c)
				if !errors.Is(err, tc.want) {
					t.Fatalf("read ended with %v, want %v", err, tc.want)
				}
				if tc.want == nil && !bytes.Equal(out.Bytes(), in) {
					t.Fatal("the bytes were changed")
				}
				if tc.want != nil {
					if !bytes.Equal(out.Bytes(), in[:out.Len()]) || out.Len() == len(in) {
						t.Fatalf("passed %d of %d bytes", out.Len(), len(in))
					}
					if _, again := c.Read(make([]byte, 10)); again != err {
						t.Fatalf("next read: %v", again)
					}
				}
			})
		}
	}
}

// TestConnMatchesGoRTMP reads every case's stream with go-rtmp's own chunk reader behind
// a Conn: the guard must see the messages go-rtmp sees.
func TestConnMatchesGoRTMP(t *testing.T) {
	streams := map[string][]byte{"spec extended timestamps": specExtended(t)}
	for _, tc := range guardCases(t) {
		streams[tc.name] = tc.stream
	}
	for name, stream := range streams {
		for _, step := range []int{1, 5, 4096} {
			t.Run(fmt.Sprintf("%s/%d", name, step), func(t *testing.T) {
				readGoRTMP(t, stream, step)
			})
		}
	}
}

// specExtended is a video message framed as the specification (and ffmpeg) frame it after
// 4.6 hours: its type-3 chunks repeat the extended timestamp, which go-rtmp does not read,
// followed by a connect. Whatever go-rtmp makes of it, the guard must make the same.
func specExtended(t testing.TB) []byte {
	video := bytes.Repeat([]byte{0x27, 1, 0, 0, 0}, 60)
	ext := binary.BigEndian.AppendUint32(nil, 0x01000000)
	b := append(basicHeader(0, 4), 0xff, 0xff, 0xff, 0, 1, 44, 9, 1, 0, 0, 0) // 300 bytes, video, stream 1
	b = append(append(b, ext...), video[:128]...)
	b = append(b, basicHeader(3, 4)...)
	b = append(append(b, ext...), video[128:256]...)
	b = append(b, basicHeader(3, 4)...)
	b = append(append(b, ext...), video[256:]...)
	return append(b, msg(3, typeCommandAMF0, 0, 0, connectBody(t, hugeStrict...), 128)...)
}

// TestConnAssemblingLimit: command messages in progress on several chunk streams may hold
// 16 MiB together.
func TestConnAssemblingLimit(t *testing.T) {
	const part = 9 << 20
	body := make([]byte, part)
	stream := setChunkSize(part) // each message's first chunk is 9 MiB; one byte is missing
	stream = append(stream, chunk(0, 3, part+1, typeCommandAMF0, body)...)
	stream = append(stream, chunk(0, 4, part+1, typeCommandAMF0, body)...)
	in := append(append([]byte(nil), handshake...), stream...)
	_, err := io.Copy(io.Discard, NewConn(&readConn{r: bytes.NewReader(in), step: 64 << 10}))
	if !errors.Is(err, ErrChunkStream) || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("got %v", err)
	}
}

// readerConfig is go-rtmp's reader configuration for the ingest (ingest/rtmp's limits);
// NewChunkStreamer takes it whole.
var readerConfig = gortmp.StreamControlStateConfig{
	DefaultChunkSize:           gortmp.DefaultChunkSize,
	MaxChunkSize:               gortmp.MaxChunkSize,
	MaxChunkStreams:            16,
	DefaultAckWindowSize:       math.MaxInt32,
	MaxAckWindowSize:           math.MaxInt32,
	DefaultBandwidthWindowSize: math.MaxInt32,
	MaxBandwidthWindowSize:     math.MaxInt32,
	MaxMessageSize:             gortmp.MaxChunkSize,
	MaxMessageStreams:          8,
}

type seenMsg struct {
	typeID byte
	length int // -1: go-rtmp does not tell
}

// readGoRTMP feeds stream (after a handshake) through a Conn to go-rtmp's chunk reader and
// decodes every message as go-rtmp's server does, until go-rtmp or the guard ends it. It
// fails when go-rtmp's messages are not the ones the guard framed, or go-rtmp's reader
// panics on a framing the guard let through.
func readGoRTMP(t testing.TB, stream []byte, step int) {
	in := append(append([]byte(nil), handshake...), stream...)
	c := NewConn(&readConn{r: bytes.NewReader(in), step: step})
	var guard []seenMsg
	c.p.onMessage = func(typeID byte, length int) { guard = append(guard, seenMsg{typeID, length}) }
	if _, err := io.ReadFull(c, make([]byte, handshakeLen)); err != nil {
		t.Fatal(err)
	}
	cfg := readerConfig
	cs := gortmp.NewChunkStreamer(bufio.NewReaderSize(c, 4096), io.Discard, &cfg)
	defer func() { _ = cs.Close() }()
	var got []seenMsg
	for {
		m, err := readMessage(cs)
		if err != nil {
			if strings.Contains(err.Error(), "invalid state") {
				t.Fatalf("go-rtmp's reader panicked on what the guard let through: %v", err)
			}
			break
		}
		s := seenMsg{byte(m.TypeID()), -1}
		switch m := m.(type) {
		case *message.AudioMessage:
			b, _ := io.ReadAll(m.Payload)
			s.length = len(b)
		case *message.VideoMessage:
			b, _ := io.ReadAll(m.Payload)
			s.length = len(b)
		case *message.SetChunkSize:
			if cs.PeerState().SetChunkSize(m.ChunkSize) != nil {
				break
			}
		case *message.CommandMessage:
			decodeBody(func(v *message.AMFConvertible) error {
				return message.CmdBodyDecoderFor(m.CommandName, m.TransactionID)(m.Body, message.NewAMFDecoder(m.Body, m.Encoding), v)
			})
		case *message.DataMessage:
			decodeBody(func(v *message.AMFConvertible) error {
				return message.DataBodyDecoderFor(m.Name)(m.Body, message.NewAMFDecoder(m.Body, m.Encoding), v)
			})
		}
		got = append(got, s)
	}
	for i, g := range got {
		if i >= len(guard) || guard[i].typeID != g.typeID || (g.length >= 0 && guard[i].length != g.length) {
			t.Fatalf("go-rtmp read %v, the guard framed %v", got, guard)
		}
	}
}

// readMessage reads one message with go-rtmp's reader; a panic is an error.
func readMessage(cs *gortmp.ChunkStreamer) (m message.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	var cmsg gortmp.ChunkMessage
	if _, _, err := cs.Read(&cmsg); err != nil {
		return nil, err
	}
	return cmsg.Message, nil
}

// decodeBody runs one of go-rtmp's body decoders (they decode through reflection and can
// panic; go-rtmp's connection loop recovers).
func decodeBody(f func(v *message.AMFConvertible) error) {
	defer func() { _ = recover() }()
	var v message.AMFConvertible
	_ = f(&v)
}

// FuzzConn feeds a Conn a valid handshake and then the fuzzer's bytes, read in steps of
// 1 + data[0]%64 bytes, with go-rtmp's reader behind it: the guard never panics and
// frames every message as go-rtmp does, and go-rtmp never decodes what the guard refuses
// (a runaway allocation would crash the fuzzer).
func FuzzConn(f *testing.F) {
	for _, tc := range guardCases(f) {
		f.Add(append([]byte{6}, tc.stream...))
	}
	f.Add(append([]byte{0}, specExtended(f)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		readGoRTMP(t, data[1:], 1+int(data[0])%64)
	})
}

// TestConnMediaAllocs: audio and video pass without an allocation.
func TestConnMediaAllocs(t *testing.T) {
	frame := msg(4, 9, 1, 0, bytes.Repeat([]byte{0x27, 1, 0, 0, 0}, 1000), 128)
	c := NewConn(&readConn{r: &loopReader{b: frame}, step: 4096})
	c.p.handshakeLeft = 0
	buf := make([]byte, 4096)
	for range 100 { // the chunk stream is created
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Read(buf) }); n != 0 {
		t.Fatalf("%v allocations per read", n)
	}
}

// loopReader repeats b forever.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], r.b[r.off:])
		n += k
		r.off = (r.off + k) % len(r.b)
	}
	return n, nil
}

// BenchmarkConnMedia measures the guard on a publisher's stream: 128-byte video chunks.
func BenchmarkConnMedia(b *testing.B) {
	frame := msg(4, 9, 1, 0, bytes.Repeat([]byte{0x27, 1, 0, 0, 0}, 4000), 128)
	c := NewConn(&readConn{r: &loopReader{b: frame}, step: 64 << 10})
	c.p.handshakeLeft = 0
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
