// Package rtsp is relaycast's RTSP and RTSPS server. It owns the listeners (gortsplib's),
// accepts publishers at rtsp://host/live/KEY (ANNOUNCE + RECORD, RTP over TCP or UDP),
// asks the ingest.Authorizer whether the key may publish and turns their RTP packets into
// bus units (H.264, AAC in RFC 3640 or LATM form, Opus).
//
// The same port serves readers (DESCRIBE, SETUP, PLAY at rtsp://host/live/PLAYBACK_ID):
// those requests are handed to a [Player] — egress/rtsp implements it — which owns the
// shared gortsplib.ServerStream of each stream. ingest/rtsp declares the interface so that
// neither package imports the other; cmd/relaycast wires them.
//
// # Ownership and failure
//
// The Server owns its gortsplib servers (one for RTSP, one for RTSPS), which own one
// goroutine per connection and per session; Close stops and waits for them all. A session
// that sends a malformed request or stream is closed on its own; RTP packets that cannot be
// decoded (loss, reordering over UDP) are dropped and counted, not fatal. Conversion code
// never panics on network input; a panic would still only close that session.
//
// # Timestamps
//
// PTS comes from gortsplib's per-session time decoder, which puts every track of a session
// on one time base (zero at the first packet). H.264 DTS comes from mediacommon's DTS
// extractor; PTS ≠ DTS marks the track as having B-frames (a new bus track, once).
//
// # Hot path
//
// Per RTP packet the session does no logging and no map lookup; per access unit it
// allocates the unit and one copy of its payload.
package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
)

// Player is what the RTSP server needs from the playback side (egress/rtsp implements it).
// Its methods are called from gortsplib's connection and session goroutines and must not
// block for long.
type Player interface {
	// Open resolves a reader's DESCRIBE or SETUP of rtsp://host/live/ID (id is the playback
	// id; query is the raw query string, which may carry token=) and returns the
	// stream that serves it, created on srv (the listener the reader came on, so RTSPS
	// readers get an RTSPS stream). The stream stays open at least until release is called
	// (once). A refusal error carries its RTSP status through a
	// StatusCode() base.StatusCode method (404 unknown or offline, 403 forbidden).
	Open(ctx context.Context, srv *gortsplib.Server, id, query, remoteAddr string) (
		st *gortsplib.ServerStream, release func(), err error)
	// Play tells that a reader of st started playing: its PLAY was accepted and the
	// session receives what is written to st from now on. stop is called (once) when that
	// reader goes away.
	Play(st *gortsplib.ServerStream) (stop func())
}

// Config configures a Server. Hub and Auth are required; Addr or TLSAddr must be set.
type Config struct {
	// Addr is the RTSP listen address (":8554"); "" turns it off.
	Addr string
	// TLSAddr is the RTSPS listen address (":8322"); "" turns it off.
	TLSAddr string
	// TLSConfig is the RTSPS certificate configuration (the same as RTMPS); required when
	// TLSAddr is set.
	TLSConfig *tls.Config
	// UDP also offers the UDP transport on plain RTSP (TCP interleaved is always offered).
	UDP bool
	// UDPRTPAddr is the RTP port of the UDP transport; RTCP uses the next port. The port
	// must be even. Default ":8000" (RTCP ":8001"). Port 0 picks a free pair (tests).
	UDPRTPAddr string
	// Hub receives the published streams.
	Hub *bus.Hub
	// Auth decides which keys may publish.
	Auth ingest.Authorizer
	// Player serves readers; nil answers every DESCRIBE and reader SETUP with 404.
	Player Player
	// Logger receives the server's log lines. Default: slog.Default().
	Logger *slog.Logger
	// RequestTimeout bounds the Authorizer and Player calls of one request. Default 10 s.
	RequestTimeout time.Duration
	// ReadTimeout closes a connection or session that sends nothing for that long
	// (gortsplib's read timeout). Default 10 s.
	ReadTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.UDPRTPAddr == "" {
		c.UDPRTPAddr = ":8000"
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
}

// Stats are the server's counters.
type Stats struct {
	// Publishers is the number of sessions publishing now; Readers of sessions playing.
	Publishers, Readers int
	// Refused counts refused publishers and readers.
	Refused uint64
	// DecodeErrors counts RTP packets or access units that could not be converted.
	DecodeErrors uint64
}

// Server is the RTSP/RTSPS server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	plain, secure *handler

	closeOnce sync.Once

	publishers   atomic.Int64
	readers      atomic.Int64
	refused      atomic.Uint64
	decodeErrors atomic.Uint64
}

// New validates cfg, binds the listeners and starts serving. A listener that fails to
// start closes the ones already started.
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil || cfg.Auth == nil {
		return nil, errors.New("rtsp: Config.Hub and Config.Auth are required")
	}
	if cfg.Addr == "" && cfg.TLSAddr == "" {
		return nil, errors.New("rtsp: neither Addr nor TLSAddr is set")
	}
	if cfg.TLSAddr != "" && cfg.TLSConfig == nil {
		return nil, errors.New("rtsp: TLSAddr needs TLSConfig")
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.Addr != "" {
		h := newHandler(s, ingest.ProtocolRTSP)
		h.gs.RTSPAddress = cfg.Addr
		if cfg.UDP {
			if err := h.bindUDP(cfg.UDPRTPAddr); err != nil {
				s.cancel()
				return nil, err
			}
		}
		if err := h.start(); err != nil {
			s.cancel()
			return nil, fmt.Errorf("rtsp: listen %s: %w", cfg.Addr, err)
		}
		s.plain = h
	}
	if cfg.TLSAddr != "" {
		h := newHandler(s, ingest.ProtocolRTSPS)
		h.gs.RTSPAddress = cfg.TLSAddr
		h.gs.TLSConfig = cfg.TLSConfig
		if err := h.start(); err != nil {
			if s.plain != nil {
				s.plain.gs.Close()
			}
			s.cancel()
			return nil, fmt.Errorf("rtsp: listen %s: %w", cfg.TLSAddr, err)
		}
		s.secure = h
	}
	attrs := []any{}
	if a := s.Addr(); a != nil {
		attrs = append(attrs, "rtsp", a.String())
		if cfg.UDP {
			attrs = append(attrs, "udp_rtp", s.plain.gs.UDPRTPAddress)
		}
	}
	if a := s.TLSAddr(); a != nil {
		attrs = append(attrs, "rtsps", a.String())
	}
	s.log.Info("rtsp server listening", attrs...)
	return s, nil
}

// Addr returns the RTSP listener's address, or nil when it is off.
func (s *Server) Addr() net.Addr {
	if s.plain == nil {
		return nil
	}
	return s.plain.gs.NetListener().Addr()
}

// TLSAddr returns the RTSPS listener's address, or nil when it is off.
func (s *Server) TLSAddr() net.Addr {
	if s.secure == nil {
		return nil
	}
	return s.secure.gs.NetListener().Addr()
}

// UDPRTPAddr returns the address of the UDP RTP port ("" when UDP is off).
func (s *Server) UDPRTPAddr() string {
	if s.plain == nil || !s.cfg.UDP {
		return ""
	}
	return s.plain.gs.UDPRTPAddress
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Publishers:   int(s.publishers.Load()),
		Readers:      int(s.readers.Load()),
		Refused:      s.refused.Load(),
		DecodeErrors: s.decodeErrors.Load(),
	}
}

// Close stops the listeners, closes every connection and session (publishers end: their
// streams enter the bus's reconnect grace) and waits for every goroutine. Safe to call
// twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel() // aborts Authorizer and Player calls in flight
		for _, h := range []*handler{s.plain, s.secure} {
			if h != nil {
				h.gs.Close()
			}
		}
	})
	return nil
}

// bindUDP binds the RTP/RTCP port pair of the UDP transport itself, so that port 0 can pick
// a free even pair, and hands the sockets to gortsplib through its ListenPacket hook.
func (h *handler) bindUDP(addr string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("rtsp: UDP address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65534 || port%2 != 0 {
		return fmt.Errorf("rtsp: UDP RTP port %q must be even (RTCP takes the next one)", portStr)
	}
	var rtpc, rtcpc net.PacketConn
	for try := 0; ; try++ {
		rtpc, err = net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("rtsp: listen UDP %s: %w", addr, err)
		}
		p := rtpc.LocalAddr().(*net.UDPAddr).Port
		if p%2 == 0 {
			rtcpc, err = net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p+1)))
			if err == nil {
				break
			}
		}
		rtpc.Close()
		if port != 0 || try >= 100 {
			return fmt.Errorf("rtsp: no free UDP port pair at %s", addr)
		}
	}
	rtpAddr := net.JoinHostPort(host, strconv.Itoa(rtpc.LocalAddr().(*net.UDPAddr).Port))
	rtcpAddr := net.JoinHostPort(host, strconv.Itoa(rtcpc.LocalAddr().(*net.UDPAddr).Port))
	h.gs.UDPRTPAddress, h.gs.UDPRTCPAddress = rtpAddr, rtcpAddr
	bound := map[string]net.PacketConn{rtpAddr: rtpc, rtcpAddr: rtcpc}
	h.unusedUDP = bound
	h.gs.ListenPacket = func(network, address string) (net.PacketConn, error) {
		if pc, ok := h.unusedUDP[address]; ok {
			delete(h.unusedUDP, address)
			return pc, nil
		}
		return net.ListenPacket(network, address)
	}
	return nil
}
