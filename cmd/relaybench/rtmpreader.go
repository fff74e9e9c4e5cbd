package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/yutopp/go-amf0"
	gortmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/handshake"
	"github.com/yutopp/go-rtmp/message"

	rtmpegress "github.com/relaycast/relaycast/egress/rtmp"
)

// errRTMPRejected is a play the server refused (an onStatus or _error of level error).
var errRTMPRejected = errors.New("rtmp: play rejected")

// rtmpStreamerConfig configures go-rtmp's chunk streamer, given whole (NewChunkStreamer
// fills in no defaults). The acknowledgement window is never reached: go-rtmp would send
// the acknowledgement through a control stream writer that only its own Conn sets up, and
// relaycast does not wait for acknowledgements from players.
var rtmpStreamerConfig = &gortmp.StreamControlStateConfig{
	DefaultChunkSize:           gortmp.DefaultChunkSize,
	MaxChunkSize:               gortmp.MaxChunkSize,
	MaxChunkStreams:            32,
	DefaultAckWindowSize:       math.MaxInt32,
	MaxAckWindowSize:           math.MaxInt32,
	DefaultBandwidthWindowSize: math.MaxInt32,
	MaxBandwidthWindowSize:     math.MaxInt32,
	MaxMessageSize:             gortmp.MaxChunkSize,
	MaxMessageStreams:          8,
}

// rtmpSetupTimeout bounds the handshake, connect, createStream and play.
const rtmpSetupTimeout = 10 * time.Second

// readRTMP plays rawURL (rtmp://host[:port]/app/name) until ctx ends, recording what
// arrives into rs. It is a plain RTMP player: handshake, connect, createStream, play, then
// audio and video messages; it answers pings.
func readRTMP(ctx context.Context, rawURL string, rs *readerStats) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "rtmp" || u.Host == "" {
		return fmt.Errorf("rtmp: bad URL %q", rawURL)
	}
	path := strings.Trim(u.Path, "/")
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return fmt.Errorf("rtmp: URL %q needs an application and a stream name", rawURL)
	}
	app, name := path[:i], path[i+1:]
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "1935")
	}
	rs.begin(time.Now())
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, rtmpSetupTimeout)
	conn, err := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return fmt.Errorf("rtmp: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(rtmpSetupTimeout))

	br := bufio.NewReaderSize(&countingReader{r: conn, n: &rs.bytes}, 64<<10)
	if err := handshake.HandshakeWithServer(br, conn, &handshake.Config{}); err != nil {
		return fmt.Errorf("rtmp handshake: %w", err)
	}
	c := &rtmpPlayer{conn: conn, cs: gortmp.NewChunkStreamer(br, conn, rtmpStreamerConfig), rs: rs}
	defer c.close()
	msid, err := c.setup(ctx, app, "rtmp://"+u.Host+"/"+app, name)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	_ = conn.SetDeadline(time.Time{})
	err = c.play(msid)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// countingReader adds the bytes read to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// rtmpPlayer is the client side of one RTMP play.
type rtmpPlayer struct {
	conn net.Conn
	cs   *gortmp.ChunkStreamer
	rs   *readerStats
	cmsg gortmp.ChunkMessage
	buf  bytes.Buffer
}

// close closes the connection, stops go-rtmp's writer goroutine and waits for it.
func (c *rtmpPlayer) close() {
	_ = c.conn.Close()
	_ = c.cs.Close()
	<-c.cs.Done()
}

// command sends an AMF0 command on message stream msid.
func (c *rtmpPlayer) command(ctx context.Context, msid uint32, name string, txn int64, args ...any) error {
	var body bytes.Buffer
	enc := amf0.NewEncoder(&body)
	for _, a := range args {
		if err := enc.Encode(a); err != nil {
			return err
		}
	}
	csid := 3
	if msid != 0 {
		csid = 8
	}
	wctx, cancel := context.WithTimeout(ctx, rtmpSetupTimeout)
	defer cancel()
	return c.cs.Write(wctx, csid, 0, &gortmp.ChunkMessage{StreamID: msid, Message: &message.CommandMessage{
		CommandName: name, TransactionID: txn, Encoding: message.EncodingTypeAMF0, Body: &body,
	}})
}

// setup sends connect and createStream, then play, and returns the message stream id.
func (c *rtmpPlayer) setup(ctx context.Context, app, tcURL, name string) (uint32, error) {
	if err := c.command(ctx, 0, "connect", 1, map[string]any{
		"app": app, "type": "nonprivate", "flashVer": "LNX 9,0,124,2", "tcUrl": tcURL,
		"fpad": false, "capabilities": 15.0, "audioCodecs": 4071.0, "videoCodecs": 252.0, "videoFunction": 1.0,
	}); err != nil {
		return 0, fmt.Errorf("rtmp connect: %w", err)
	}
	if _, err := c.await(1); err != nil {
		return 0, fmt.Errorf("rtmp connect: %w", err)
	}
	if err := c.command(ctx, 0, "createStream", 2, nil); err != nil {
		return 0, fmt.Errorf("rtmp createStream: %w", err)
	}
	args, err := c.await(2)
	if err != nil {
		return 0, fmt.Errorf("rtmp createStream: %w", err)
	}
	id, ok := args[len(args)-1].(float64)
	if !ok || id < 1 || id > 1<<20 {
		return 0, fmt.Errorf("rtmp createStream: bad result %v", args)
	}
	if err := c.command(ctx, uint32(id), "play", 0, nil, name, -2.0); err != nil {
		return 0, fmt.Errorf("rtmp play: %w", err)
	}
	return uint32(id), nil
}

// await reads messages until the _result of transaction txn and returns its arguments.
func (c *rtmpPlayer) await(txn int64) ([]any, error) {
	for {
		msg, _, err := c.read()
		if err != nil {
			return nil, err
		}
		cmd, ok := msg.(*message.CommandMessage)
		if !ok {
			if err := c.control(msg); err != nil {
				return nil, err
			}
			continue
		}
		args := rtmpegress.DecodeCommandArgs(cmd.Body)
		switch {
		case cmd.CommandName == "_result" && cmd.TransactionID == txn:
			if len(args) == 0 {
				return nil, fmt.Errorf("empty _result")
			}
			return args, nil
		case cmd.CommandName == "_error" && cmd.TransactionID == txn:
			return nil, fmt.Errorf("%w: %s", errRTMPRejected, describeStatus(args))
		case cmd.CommandName == "onStatus":
			if level, _ := statusInfo(args)["level"].(string); level == "error" {
				return nil, fmt.Errorf("%w: %s", errRTMPRejected, describeStatus(args))
			}
		}
	}
}

// play reads the stream until the connection ends.
func (c *rtmpPlayer) play(msid uint32) error {
	for {
		msg, ts, err := c.read()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *message.VideoMessage:
			c.buf.Reset()
			if _, err := c.buf.ReadFrom(m.Payload); err != nil {
				return err
			}
			c.video(c.buf.Bytes(), ts)
		case *message.AudioMessage:
			_, _ = io.Copy(io.Discard, m.Payload)
			c.rs.media(time.Now())
		case *message.CommandMessage:
			if m.CommandName != "onStatus" {
				continue
			}
			args := rtmpegress.DecodeCommandArgs(m.Body)
			if level, _ := statusInfo(args)["level"].(string); level == "error" {
				return fmt.Errorf("%w: %s", errRTMPRejected, describeStatus(args))
			}
		case *message.DataMessage:
			_, _ = io.Copy(io.Discard, m.Body)
		default:
			if err := c.control(msg); err != nil {
				return err
			}
		}
	}
}

// video records one FLV video tag body: frame type and codec, AVC packet type,
// composition time, then the AVCC NAL units.
func (c *rtmpPlayer) video(b []byte, ts uint32) {
	at := time.Now()
	if len(b) < 5 || b[0]&0x0f != 7 || b[1] != 1 { // not an AVC coded frame (a sequence header...)
		c.rs.media(at)
		return
	}
	nalus := b[5:]
	st, ok := stampInAVCC(nalus)
	c.rs.video(videoFrame{at: at, key: b[0]>>4 == 1 && hasIDR(nalus), st: st, stamped: ok,
		dts: time.Duration(ts) * time.Millisecond, hasDTS: true})
}

// read returns the next message and its timestamp (ms). go-rtmp's decoder panics on some
// malformed input: that is an error of this connection.
func (c *rtmpPlayer) read() (msg message.Message, ts uint32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rtmp: malformed message: %v", r)
		}
	}()
	_, ts, err = c.cs.Read(&c.cmsg)
	if err != nil {
		return nil, 0, fmt.Errorf("rtmp: %w", err)
	}
	return c.cmsg.Message, ts, nil
}

// control handles the server's protocol control messages: its chunk size, and pings.
func (c *rtmpPlayer) control(msg message.Message) error {
	switch m := msg.(type) {
	case *message.SetChunkSize:
		if m.ChunkSize < 1 || m.ChunkSize > 1<<24 {
			return fmt.Errorf("rtmp: chunk size %d", m.ChunkSize)
		}
		return c.cs.PeerState().SetChunkSize(m.ChunkSize)
	case *message.UserCtrl:
		if p, ok := m.Event.(*message.UserCtrlEventPingRequest); ok {
			ctx, cancel := context.WithTimeout(context.Background(), rtmpSetupTimeout)
			defer cancel()
			return c.cs.Write(ctx, 2, 0, &gortmp.ChunkMessage{Message: &message.UserCtrl{
				Event: &message.UserCtrlEventPingResponse{Timestamp: p.Timestamp}}})
		}
	}
	return nil
}

// statusInfo returns the first object among args: an onStatus or _error information.
func statusInfo(args []any) map[string]any {
	for _, a := range args {
		switch m := a.(type) {
		case map[string]any:
			return m
		case amf0.ECMAArray:
			return m
		}
	}
	return nil
}

// describeStatus formats a status: code and description.
func describeStatus(args []any) string {
	info := statusInfo(args)
	code, _ := info["code"].(string)
	desc, _ := info["description"].(string)
	if s := strings.TrimSpace(code + " " + desc); s != "" {
		return s
	}
	return "no description"
}
