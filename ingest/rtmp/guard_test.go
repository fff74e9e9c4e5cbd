package rtmp

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/yutopp/go-amf0"

	"github.com/relaycast/relaycast/bus"
)

// TestHostileAMF: a connect whose command object holds a strict array of 2^31-1 elements
// (go-amf0 sizes the slice, 32 GiB, before it reads an element: a fatal error the process
// cannot recover from) or an ECMA array that claims 2^32-1 properties, sent by a raw TCP or
// TLS client, closes that connection only; a publisher that comes afterwards is served.
func TestHostileAMF(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	env := startServer(t, nil)
	for _, tc := range []struct {
		name  string
		value []byte // the value of the command object's property "x"
		tls   bool
	}{
		{"strict array", []byte{0x0a, 0x7f, 0xff, 0xff, 0xff}, false},
		{"ecma array", []byte{0x08, 0xff, 0xff, 0xff, 0xff, 0, 0, 9}, false},
		{"strict array over rtmps", []byte{0x0a, 0x7f, 0xff, 0xff, 0xff}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c net.Conn
			var err error
			if tc.tls {
				c, err = tls.Dial("tcp", env.srv.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true})
			} else {
				c, err = net.Dial("tcp", env.srv.Addr().String())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			rawHandshake(t, c)
			if _, err := c.Write(connectMessage(t, tc.value)); err != nil {
				t.Fatal(err)
			}
			// The server closes the connection: reads end in EOF (or a reset), not a timeout.
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server kept the connection open")
			}
		})
	}
	waitFor(t, 5*time.Second, func() bool {
		return strings.Count(env.logs.String(), "rtmpguard: malformed AMF0") == 3
	})

	// The server still serves a publisher.
	r := subscribe(t, env.hub, streamID(0))
	cmd := ffmpeg(t, publishURL("rtmp", env.srv.Addr(), testKeys[0]), 2, 0)
	ctx := t.Context()
	video := 0
	for {
		u, err := r.Next(ctx)
		if errors.Is(err, bus.ErrEnded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if u.Track.Codec == bus.CodecH264 {
			video++
		}
	}
	if err := waitExit(t, cmd, 10*time.Second); err != nil || video < 40 {
		t.Fatalf("publisher after the hostile clients: ffmpeg %v, %d video units", err, video)
	}
}

// rawHandshake does the client's side of the RTMP handshake on c: C0+C1, then reads
// S0+S1+S2 and echoes S1 as C2.
func rawHandshake(t *testing.T, c net.Conn) {
	t.Helper()
	c0c1 := make([]byte, 1+1536)
	c0c1[0] = 3
	if _, err := c.Write(c0c1); err != nil {
		t.Fatal(err)
	}
	s := make([]byte, 1+1536+1536)
	if _, err := io.ReadFull(c, s); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(s[1 : 1+1536]); err != nil {
		t.Fatal(err)
	}
}

// connectMessage is a connect command (transaction 1) whose command object is
// {app: "live", x: value}, in one chunk on chunk stream 3.
func connectMessage(t *testing.T, value []byte) []byte {
	t.Helper()
	var body bytes.Buffer
	enc := amf0.NewEncoder(&body)
	for _, v := range []any{"connect", 1.0} {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	body.Write([]byte{0x03, 0, 3, 'a', 'p', 'p', 0x02, 0, 4, 'l', 'i', 'v', 'e', 0, 1, 'x'})
	body.Write(value)
	body.Write([]byte{0, 0, 9})
	n := body.Len()
	if n > 128 {
		t.Fatal("connect does not fit one chunk")
	}
	msg := []byte{0x03, 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n), 20}
	msg = binary.LittleEndian.AppendUint32(msg, 0)
	return append(msg, body.Bytes()...)
}
