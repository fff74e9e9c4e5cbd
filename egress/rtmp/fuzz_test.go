package rtmp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	gortmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/relaycast/relaycast/bus"
)

// refMessage is a message as a reference RTMP chunk parser (RTMP 1.0 §5.3, extended
// timestamps repeated in type-3 chunks) reads it.
type refMessage struct {
	csid byte
	typ  byte
	msid uint32
	ts   uint32
	body []byte
}

// parseChunks is the inverse of appendMessage for a stream of type-0-headed messages with
// type-3 continuations at ChunkSize.
func parseChunks(b []byte) ([]refMessage, error) {
	var out []refMessage
	for len(b) > 0 {
		if len(b) < 12 || b[0]>>6 != 0 {
			return nil, errors.New("bad type-0 header")
		}
		m := refMessage{csid: b[0] & 0x3f, typ: b[7], msid: binary.LittleEndian.Uint32(b[8:12])}
		ts := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		n := int(b[4])<<16 | int(b[5])<<8 | int(b[6])
		b = b[12:]
		ext := ts == extendedTimestamp
		if ext {
			if len(b) < 4 {
				return nil, errors.New("short extended timestamp")
			}
			ts = binary.BigEndian.Uint32(b)
			b = b[4:]
		}
		m.ts = ts
		for first := true; len(m.body) < n || (n == 0 && first); first = false {
			if !first {
				if len(b) < 1 || b[0] != 0xc0|m.csid {
					return nil, errors.New("bad continuation header")
				}
				b = b[1:]
				if ext {
					if len(b) < 4 || binary.BigEndian.Uint32(b) != ts {
						return nil, errors.New("bad continuation timestamp")
					}
					b = b[4:]
				}
			}
			k := min(n-len(m.body), ChunkSize)
			if len(b) < k {
				return nil, errors.New("short chunk")
			}
			m.body = append(m.body, b[:k]...)
			b = b[k:]
		}
		out = append(out, m)
	}
	return out, nil
}

// FuzzChunkRoundTrip: appendMessage's bytes parse back (reference parser; go-rtmp's reader
// too below the extended timestamp, which it does not repeat in continuations) to the same
// message.
func FuzzChunkRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte{}, uint32(0), byte(9), uint32(1))
	f.Add(bytes.Repeat([]byte{7}, 2*ChunkSize+5), []byte{9, 9}, uint32(0xffffff), byte(8), uint32(1))
	f.Add([]byte{}, []byte{1, 2}, uint32(0xfffffe), byte(20), uint32(3))
	f.Fuzz(func(t *testing.T, a, b []byte, ts uint32, typ byte, msid uint32) {
		if len(a)+len(b) >= 1<<24 {
			return
		}
		csid := byte(csidVideo)
		data := appendMessage(nil, csid, typ, msid, ts, a, b)
		if len(data) != messageSize(len(a)+len(b), ts) {
			t.Fatalf("size %d, messageSize %d", len(data), messageSize(len(a)+len(b), ts))
		}
		ms, err := parseChunks(data)
		if err != nil || len(ms) != 1 {
			t.Fatalf("parse: %v (%d messages)", err, len(ms))
		}
		m := ms[0]
		want := append(append([]byte{}, a...), b...)
		if m.csid != csid || m.typ != typ || m.msid != msid || m.ts != ts || !bytes.Equal(m.body, want) {
			t.Fatalf("got %+v", m)
		}
		// go-rtmp panics on an empty message ("invalid state"); media messages are never empty.
		if ts < extendedTimestamp && (typ == typeVideo || typ == typeAudio) && len(want) > 0 {
			cs := gortmp.NewChunkStreamer(bufio.NewReader(bytes.NewReader(data)), io.Discard, readerConfig)
			defer cs.Close()
			if err := cs.PeerState().SetChunkSize(ChunkSize); err != nil {
				t.Fatal(err)
			}
			var cm gortmp.ChunkMessage
			_, gts, err := cs.Read(&cm)
			if err != nil {
				t.Fatalf("go-rtmp: %v", err)
			}
			var body []byte
			switch m := cm.Message.(type) {
			case *message.VideoMessage:
				body, _ = io.ReadAll(m.Payload)
			case *message.AudioMessage:
				body, _ = io.ReadAll(m.Payload)
			}
			if gts != ts || cm.StreamID != msid || !bytes.Equal(body, want) {
				t.Fatalf("go-rtmp read ts %d stream %d, %d bytes", gts, cm.StreamID, len(body))
			}
		}
	})
}

// FuzzMuxer: the Muxer's output for a unit sequence parses into metadata, sequence headers
// before the first unit of each track, and one message per carried unit with its keyframe
// flag and composition time.
func FuzzMuxer(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0x80, 0x41, 7}, uint16(100), true)
	f.Add([]byte{0xff, 0x10, 0x22}, uint16(5000), false)
	f.Fuzz(func(t *testing.T, ops []byte, size uint16, rebase bool) {
		tracks := synthTracks()
		hevc := &bus.Track{Index: 0, Codec: bus.CodecH265, ClockRate: 90000, Config: make([]byte, 30)}
		hevc.Config[0] = 1
		m := NewMuxer(1, rebase, false)
		m.SetTracks(tracks)
		var out []byte
		var units []*bus.Unit
		dts := time.Duration(0)
		for i, op := range ops {
			tr := tracks[op&1]
			if op&0x80 != 0 && tr.Codec == bus.CodecH264 {
				tr = hevc
			}
			dts += time.Duration(op>>1&0x1f) * time.Millisecond
			u := &bus.Unit{Track: tr, DTS: dts, PTS: dts + time.Duration(op>>6)*40*time.Millisecond,
				Key: i == 0 || op&0x20 != 0, Payload: make([]byte, int(size)%20000+1)}
			if tr.Codec == bus.CodecAAC {
				u.PTS = u.DTS
			}
			units = append(units, u)
			out = m.AppendUnit(out, u)
		}
		ms, err := parseChunks(out)
		if err != nil {
			t.Fatal(err)
		}
		media := 0
		seen := map[byte]bool{}
		for _, msg := range ms {
			switch msg.typ {
			case typeDataAMF0:
				continue
			case typeVideo, typeAudio:
			default:
				t.Fatalf("message type %d", msg.typ)
			}
			seq := (msg.typ == typeAudio && msg.body[1] == flvAACSeqHeader) ||
				(msg.typ == typeVideo && msg.body[0]&flvExHeader == 0 && msg.body[1] == flvAVCSeqHeader) ||
				(msg.typ == typeVideo && msg.body[0]&flvExHeader != 0 && msg.body[0]&0x0f == flvExSequenceStart)
			if seq {
				seen[msg.typ] = true
				continue
			}
			if !seen[msg.typ] {
				t.Fatalf("media of type %d before its sequence header", msg.typ)
			}
			u := units[media]
			media++
			if msg.typ == typeVideo {
				if key := msg.body[0]>>4&0x07 == flvFrameKey; key != u.Key {
					t.Fatalf("unit %d: key %v, flag %v", media, u.Key, key)
				}
				var cts int32
				switch {
				case msg.body[0]&flvExHeader == 0:
					cts = int32(uint32(msg.body[2])<<24|uint32(msg.body[3])<<16|uint32(msg.body[4])<<8) >> 8
				case msg.body[0]&0x0f == flvExCodedFrames:
					cts = int32(uint32(msg.body[5])<<24|uint32(msg.body[6])<<16|uint32(msg.body[7])<<8) >> 8
				}
				if time.Duration(cts)*time.Millisecond != u.PTS-u.DTS {
					t.Fatalf("unit %d: cts %d for %v", media, cts, u.PTS-u.DTS)
				}
			}
			if !bytes.HasSuffix(msg.body, u.Payload) {
				t.Fatalf("unit %d: payload", media)
			}
		}
		if media != len(units) {
			t.Fatalf("%d media messages for %d units", media, len(units))
		}
	})
}

// FuzzClientRead: whatever a server sends, the client's reading ends with an error or a
// result and never panics.
func FuzzClientRead(f *testing.F) {
	ok := appendSetChunkSize(nil)
	ok = appendCommand(ok, csidCommand, 0, "_result", 1, nil, statusInfo("status", "NetConnection.Connect.Success", ""))
	f.Add(ok)
	f.Add(appendCommand(nil, csidCommand, 0, "onStatus", 0, nil, statusInfo("error", "NetStream.Publish.BadName", "x")))
	f.Add([]byte{0x03, 0xff, 0xff, 0xff, 0, 0, 5, 20, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 1})
	f.Add(appendMessage(nil, 3, typeCommandAMF0, 0, 0, []byte{2, 0, 11, 'o', 'n', 'F', 'C', 'P', 'u', 'b', 'l', 'i', 's', 'h'}, nil))
	f.Add(hostileResult())
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &clientConn{src: errReader{r: bytes.NewReader(in)}, conn: nopConn{}}
		c.cs = gortmp.NewChunkStreamer(bufio.NewReader(&c.src), io.Discard, readerConfig)
		c.csOpen = true
		defer c.close()
		_, _ = c.await(1, "")
		c.src.r = bytes.NewReader(in)
	})
}

// nopConn is a net.Conn that accepts writes (pongs) and has nothing to read.
type nopConn struct{ net.Conn }

func (nopConn) Write(b []byte) (int, error) { return len(b), nil }
func (nopConn) Close() error                { return nil }

// hostileResult is a _result whose argument is a strict array of 2^31-1 elements in five
// bytes: go-amf0 allocates the slice (32 GiB) before it reads an element.
func hostileResult() []byte {
	body := amf0Values("_result", 1.0, nil)
	body = append(body, 0x0a, 0x7f, 0xff, 0xff, 0xff)
	return appendMessage(appendSetChunkSize(nil), csidCommand, typeCommandAMF0, 0, 0, body, nil)
}

// TestClientHostileServer: a relay destination that answers with such a body fails the
// setup; it does not end the process.
func TestClientHostileServer(t *testing.T) {
	in := hostileResult()
	c := &clientConn{src: errReader{r: bytes.NewReader(in)}, conn: nopConn{}}
	c.cs = gortmp.NewChunkStreamer(bufio.NewReader(&c.src), io.Discard, readerConfig)
	c.csOpen = true
	defer c.close()
	args, err := c.await(1, "")
	if err != nil || len(args) != 0 {
		t.Fatalf("await: %v, %v", args, err)
	}
	if args := DecodeCommandArgs(bytes.NewReader(amf0Values(statusInfo("status", "NetStream.Publish.Start", "")))); infoObject(args)["code"] != "NetStream.Publish.Start" {
		t.Fatalf("a well-formed status: %v", args)
	}
}
