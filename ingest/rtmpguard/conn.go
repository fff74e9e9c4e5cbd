package rtmpguard

import (
	"encoding/binary"
	"fmt"
	"net"
)

const (
	// handshakeLen is what a client sends before its chunk stream: C0 (1 byte), C1 and C2
	// (1536 bytes each).
	handshakeLen = 1 + 1536 + 1536
	// defaultChunkSize is RTMP's chunk size until a Set Chunk Size (specification §5.4.1).
	defaultChunkSize = 128
	// maxChunkSize is go-rtmp's MaxChunkSize: it lowers larger Set Chunk Size values to it.
	maxChunkSize = 0xffffff
	// maxChunkStreams bounds the chunk streams of a connection; go-rtmp's limit for the
	// ingest (16) ends the connection first.
	maxChunkStreams = 64
	// maxAssembling bounds the bytes of command and data messages a connection has in
	// assembly at once: one message of the largest size RTMP's 24-bit length allows.
	maxAssembling = 1 << 24
	// maxKept is the largest assembly buffer a chunk stream keeps between messages.
	maxKept = 4 << 10
)

// RTMP message types the guard reads (specification §5.4, §7.1).
const (
	typeSetChunkSize = 1
	typeDataAMF3     = 15
	typeCommandAMF3  = 17
	typeDataAMF0     = 18
	typeCommandAMF0  = 20
)

// Conn is the server side of an RTMP connection with the client's chunk stream checked
// before go-rtmp reads it (see the package documentation). Read returns an error wrapping
// ErrMalformed or ErrChunkStream, instead of the bytes, when they complete a message
// go-amf0 must not decode or break the chunk framing; the connection is then unusable and
// every later Read returns the same error. Write and the other methods are the wrapped
// connection's. Read must not be called concurrently (go-rtmp reads on one goroutine).
type Conn struct {
	net.Conn
	err error
	p   parser
}

// NewConn returns c guarded. c is the decrypted stream (the *tls.Conn for RTMPS) of a
// connection the server accepted and whose handshake go-rtmp has not begun.
func NewConn(c net.Conn) *Conn {
	return &Conn{Conn: c, p: parser{handshakeLeft: handshakeLen, chunkSize: defaultChunkSize}}
}

// Read reads from the wrapped connection and checks the bytes before returning them. It
// copies nothing: go-rtmp cannot act on a message before its last byte, so withholding the
// read that completes a refused message is enough.
func (c *Conn) Read(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		if perr := c.p.feed(b[:n]); perr != nil {
			c.err = perr
			return 0, perr
		}
	}
	return n, err
}

// parser follows a client's byte stream as go-rtmp v0.0.7's server reads it: handshake,
// then chunks (basic header, message header, extended timestamp, payload). It keeps the
// bodies of the messages it checks; other payloads are only counted.
type parser struct {
	handshakeLeft int
	inPayload     bool
	hdr           [3 + 11 + 4]byte // basic header, message header, extended timestamp
	hn            int              // header bytes in hdr
	chunkSize     int
	cur           *chunkStream // the chunk stream of the payload being read
	chunkLeft     int          // payload bytes of the current chunk still to come
	streams       []*chunkStream
	assembling    int // bytes in the chunk streams' body buffers

	// onMessage, when set (by tests), is called with every complete message.
	onMessage func(typeID byte, length int)
}

// chunkStream is one chunk stream's state: the header fields later chunks inherit and the
// message in progress.
type chunkStream struct {
	id       int
	length   int // message length; 0 until a type 0 or 1 header
	typeID   byte
	streamID uint32
	received int    // bytes of the message in progress
	keep     bool   // the message in progress is assembled in body
	body     []byte // the message in progress, when kept
}

// feed parses the next bytes of the stream.
func (p *parser) feed(b []byte) error {
	if p.handshakeLeft > 0 {
		k := min(len(b), p.handshakeLeft)
		p.handshakeLeft -= k
		b = b[k:]
	}
	for len(b) > 0 {
		if !p.inPayload {
			for want := p.headerLen(); p.hn < want; want = p.headerLen() {
				if len(b) == 0 {
					return nil
				}
				k := copy(p.hdr[p.hn:want], b)
				p.hn += k
				b = b[k:]
			}
			if err := p.startChunk(); err != nil {
				return err
			}
			continue
		}
		cs := p.cur
		k := min(len(b), p.chunkLeft)
		if cs.keep {
			if err := p.assemble(cs, b[:k]); err != nil {
				return err
			}
		}
		cs.received += k
		p.chunkLeft -= k
		b = b[k:]
		if p.chunkLeft == 0 {
			p.inPayload = false
			if cs.received == cs.length {
				cs.received = 0
				if err := p.complete(cs); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// messageHeaderLen is the message header's length by chunk type (fmt).
var messageHeaderLen = [4]int{11, 7, 3, 0}

// headerLen is the length of the chunk header in hdr, as far as its first p.hn bytes tell.
// A timestamp (type 0) or timestamp delta (types 1 and 2) of 0xffffff is followed by a
// 32-bit extended timestamp. go-rtmp reads none after a type-3 header, even when the
// chunk stream's last header had one, and neither does this: the guard must frame the
// stream as its consumer does.
func (p *parser) headerLen() int {
	if p.hn == 0 {
		return 1
	}
	basic := p.basicLen()
	fmtType := p.hdr[0] >> 6
	n := basic + messageHeaderLen[fmtType]
	if fmtType < 3 && p.hn >= basic+3 &&
		p.hdr[basic] == 0xff && p.hdr[basic+1] == 0xff && p.hdr[basic+2] == 0xff {
		n += 4
	}
	return n
}

// basicLen is the basic header's length: chunk stream ids 64 and up take 2 or 3 bytes.
func (p *parser) basicLen() int {
	switch p.hdr[0] & 0x3f {
	case 0:
		return 2
	case 1:
		return 3
	}
	return 1
}

// startChunk applies the complete header in hdr: the chunk stream's message fields and
// the length of this chunk's payload.
func (p *parser) startChunk() error {
	basic := p.basicLen()
	id := int(p.hdr[0] & 0x3f)
	switch basic {
	case 2:
		id = int(p.hdr[1]) + 64
	case 3:
		// go-rtmp reads the two id bytes of this form with io.ReadAtLeast into its 64 KiB
		// scratch buffer, so it also swallows whatever its bufio.Reader holds after them:
		// its framing then depends on how the bytes arrived, which the client controls.
		// Clients use chunk stream ids below 320 (ffmpeg and OBS stay under 10).
		return fmt.Errorf("%w: 3-byte chunk basic header (go-rtmp misreads it)", ErrChunkStream)
	}
	cs, err := p.stream(id)
	if err != nil {
		return err
	}
	mh := p.hdr[basic:p.hn]
	if fmtType := p.hdr[0] >> 6; fmtType <= 1 {
		length := int(mh[3])<<16 | int(mh[4])<<8 | int(mh[5])
		typeID := mh[6]
		// go-rtmp appends to the message in progress under the new header's length and type;
		// a header that changes them is refused rather than followed.
		if cs.received > 0 && (length != cs.length || typeID != cs.typeID) {
			return fmt.Errorf("%w: chunk stream %d: header changes the message in progress", ErrChunkStream, id)
		}
		cs.length, cs.typeID = length, typeID
		if fmtType == 0 {
			cs.streamID = binary.LittleEndian.Uint32(mh[7:11])
		}
	}
	if cs.length == 0 { // go-rtmp panics on it
		return fmt.Errorf("%w: chunk stream %d: message of length 0", ErrChunkStream, id)
	}
	if cs.received == 0 {
		switch cs.typeID {
		case typeSetChunkSize, typeDataAMF3, typeCommandAMF3, typeDataAMF0, typeCommandAMF0:
			cs.keep = true
		default:
			cs.keep = false
		}
	}
	p.cur = cs
	p.chunkLeft = min(cs.length-cs.received, p.chunkSize)
	p.hn = 0
	p.inPayload = true
	return nil
}

// stream returns the state of chunk stream id, created on first use.
func (p *parser) stream(id int) (*chunkStream, error) {
	if p.cur != nil && p.cur.id == id {
		return p.cur, nil
	}
	for _, cs := range p.streams {
		if cs.id == id {
			return cs, nil
		}
	}
	if len(p.streams) == maxChunkStreams {
		return nil, fmt.Errorf("%w: more than %d chunk streams", ErrChunkStream, maxChunkStreams)
	}
	cs := &chunkStream{id: id}
	p.streams = append(p.streams, cs)
	return cs, nil
}

// assemble appends payload bytes to the message in progress of cs.
func (p *parser) assemble(cs *chunkStream, b []byte) error {
	if cs.typeID == typeSetChunkSize { // only its first 4 bytes are read
		b = b[:min(len(b), 4-len(cs.body))]
	}
	if p.assembling+len(b) > maxAssembling {
		return fmt.Errorf("%w: more than %d bytes of command and data messages in progress",
			ErrChunkStream, maxAssembling)
	}
	cs.body = append(cs.body, b...)
	p.assembling += len(b)
	return nil
}

// complete handles the message cs just completed: a Set Chunk Size applies from the next
// chunk on (as go-rtmp applies it before reading on); command and data messages are
// checked as go-rtmp decodes them.
func (p *parser) complete(cs *chunkStream) error {
	body := cs.body
	p.assembling -= len(body)
	if cap(body) > maxKept {
		cs.body = nil
	} else {
		cs.body = body[:0]
	}
	if p.onMessage != nil {
		p.onMessage(cs.typeID, cs.length)
	}
	var err error
	switch cs.typeID {
	case typeSetChunkSize:
		return p.setChunkSize(cs, body)
	case typeCommandAMF0:
		err = checkCommand(body)
	case typeDataAMF0:
		err = checkData(body)
	// An AMF3 command or data body starts with a format byte, then AMF0 values in practice.
	// go-rtmp refuses both types today; they are checked all the same.
	case typeCommandAMF3:
		err = checkCommand(body[1:])
	case typeDataAMF3:
		err = checkData(body[1:])
	}
	if err != nil {
		return fmt.Errorf("chunk stream %d, message type %d: %w", cs.id, cs.typeID, err)
	}
	return nil
}

// setChunkSize applies a Set Chunk Size message as go-rtmp does: it reads the first 4 bytes,
// refuses a set top bit and 0, and lowers values above maxChunkSize. go-rtmp applies it on
// any message stream that exists and ends the connection otherwise; the guard only takes it
// on the control stream (0), where the specification puts it.
func (p *parser) setChunkSize(cs *chunkStream, body []byte) error {
	if len(body) < 4 {
		return fmt.Errorf("%w: set chunk size of %d bytes", ErrChunkStream, len(body))
	}
	if cs.streamID != 0 {
		return fmt.Errorf("%w: set chunk size on message stream %d", ErrChunkStream, cs.streamID)
	}
	v := binary.BigEndian.Uint32(body)
	if v == 0 || v > 0x7fffffff {
		return fmt.Errorf("%w: set chunk size 0x%08x", ErrChunkStream, v)
	}
	p.chunkSize = int(min(v, maxChunkSize))
	return nil
}

// setDataFrame is the name of the data message that carries a publisher's metadata.
const setDataFrame = "@setDataFrame"

// checkCommand checks a command body as go-rtmp decodes it: the command name into a
// string and the transaction ID into an int64 (typed targets: their markers must match),
// then every argument into `any` or a map.
func checkCommand(body []byte) error {
	return checkValues(body, markerString, markerNumber)
}

// checkData checks a data body as go-rtmp decodes it: the name into a string, then, unless
// the name is @setDataFrame, every value into `any`. go-rtmp hands @setDataFrame's values
// undecoded to the handler (relaycast's ingest checks them and ignores bad metadata).
func checkData(body []byte) error {
	if len(body) >= 3+len(setDataFrame) && body[0] == markerString &&
		int(binary.BigEndian.Uint16(body[1:])) == len(setDataFrame) &&
		string(body[3:3+len(setDataFrame)]) == setDataFrame {
		return nil
	}
	return checkValues(body, markerString)
}
