package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// webrtcOptions configures the WebRTC API shared by WHIP ingest and WHEP playback.
type webrtcOptions struct {
	// Addr is the one ICE port, for UDP and for ICE-TCP (--webrtc-addr, ":8189"). With no
	// host, UDP listens on that port of every interface (one socket per address, so that
	// replies leave from the address the client reached).
	Addr string
	// PublicIPs are the host's public addresses behind a 1:1 NAT (--webrtc-public-ip,
	// repeatable). They are added to the answers as host candidates of the same port; the
	// private addresses stay, for viewers on the LAN.
	PublicIPs []string
	// Loopback lets ICE offer 127.0.0.1/::1 candidates (tests, single-host setups).
	Loopback bool
	// Logger receives pion's warnings and errors. Default: slog.Default().
	Logger *slog.Logger
}

// newWebRTCAPI builds the *webrtc.API for ingest/whip and egress/whep: the default codecs
// (H.264, VP8, VP9, AV1, H.265, Opus), the default interceptors (NACK generator and
// responder, RTCP sender/receiver reports, TWCC, stats), all ICE on one UDP port with
// ICE-TCP on the same port number, and NAT 1:1 addresses. The Closer releases the sockets;
// close it after the WHIP and WHEP servers.
func newWebRTCAPI(cfg webrtcOptions) (*webrtc.API, io.Closer, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("webrtc addr %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, nil, fmt.Errorf("webrtc addr %q: bad port", cfg.Addr)
	}
	for _, ip := range cfg.PublicIPs {
		if net.ParseIP(ip) == nil {
			return nil, nil, fmt.Errorf("webrtc public ip %q: not an IP address", ip)
		}
	}
	logs := pionLogs{log: cfg.Logger}

	se := webrtc.SettingEngine{LoggerFactory: logs}
	var closers multiCloser
	ok := false
	defer func() {
		if !ok {
			_ = closers.Close()
		}
	}()

	// UDP: one mux serves every peer connection.
	unspecified := host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified()
	var udpMux ice.UDPMux
	var ln net.Listener
	if unspecified && port != 0 {
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLogger(logs.NewLogger("udpmux")),
			ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6)}
		if cfg.Loopback {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		m, err := ice.NewMultiUDPMuxFromPort(port, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("webrtc udp port %d: %w", port, err)
		}
		udpMux = m
	} else {
		conn, tcp, err := listenUDPAndTCP(host, port)
		if err != nil {
			return nil, nil, err
		}
		port = conn.LocalAddr().(*net.UDPAddr).Port
		udpMux = webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), conn)
		ln = tcp
	}
	closers = append(closers, udpMux)
	se.SetICEUDPMux(udpMux)

	// ICE-TCP on the same port number, for clients whose UDP is blocked.
	if ln == nil {
		if ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))); err != nil {
			return nil, nil, fmt.Errorf("webrtc tcp: %w", err)
		}
	}
	tcpMux := webrtc.NewICETCPMux(logs.NewLogger("tcpmux"), ln, 8)
	closers = append(closers, tcpMux)
	se.SetICETCPMux(tcpMux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6,
		webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})

	if len(cfg.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteAppend,
		}); err != nil {
			return nil, nil, fmt.Errorf("webrtc public ip: %w", err)
		}
	}
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	// The server's candidates are real addresses: no mDNS.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)

	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, nil, fmt.Errorf("webrtc codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		return nil, nil, fmt.Errorf("webrtc interceptors: %w", err)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(se))
	ok = true
	cfg.Logger.Info("webrtc ice listening", "udp_tcp_port", port, "public_ips", cfg.PublicIPs)
	return api, closers, nil
}

// multiCloser closes several closers, in reverse order.
type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var errs []error
	for i := len(m) - 1; i >= 0; i-- {
		if err := m[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pionLogs routes pion's log lines to slog: errors as warnings, warnings and info as debug
// (pion warns on every normal session teardown: "failed to read from candidate ... closed
// pipe"), debug and trace dropped.
type pionLogs struct{ log *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: p.log.With("component", "pion", "scope", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(string)          {}
func (l pionLogger) Debugf(string, ...any) {}
func (l pionLogger) Info(msg string)       { l.log.Debug(msg) }
func (l pionLogger) Infof(f string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(f, a...))
	}
}
func (l pionLogger) Warn(msg string) { l.log.Debug(msg) }
func (l pionLogger) Warnf(f string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(f, a...))
	}
}
func (l pionLogger) Error(msg string) { l.log.Warn(msg) }
func (l pionLogger) Errorf(f string, a ...any) {
	l.log.Warn(fmt.Sprintf(f, a...))
}

// parseICEServer reads a --webrtc-ice-server value: "stun:host:port",
// "turn:host:port?transport=tcp" or "turns:host:port", with optional credentials written
// "turn:user:password@host:port".
func parseICEServer(v string) (webrtc.ICEServer, error) {
	scheme, rest, ok := strings.Cut(v, ":")
	switch {
	case !ok || rest == "":
		return webrtc.ICEServer{}, fmt.Errorf("ice server %q: want stun:host:port or turn:[user:pass@]host:port", v)
	case scheme != "stun" && scheme != "stuns" && scheme != "turn" && scheme != "turns":
		return webrtc.ICEServer{}, fmt.Errorf("ice server %q: scheme must be stun, stuns, turn or turns", v)
	}
	var srv webrtc.ICEServer
	if creds, hostPart, hasCreds := strings.Cut(rest, "@"); hasCreds {
		user, pass, ok := strings.Cut(creds, ":")
		if !ok || user == "" {
			return webrtc.ICEServer{}, fmt.Errorf("ice server %q: credentials must be user:password", redactICE(v))
		}
		srv.Username, srv.Credential = user, pass
		rest = hostPart
	}
	host, _, _ := strings.Cut(rest, "?")
	if _, _, err := net.SplitHostPort(host); err != nil {
		return webrtc.ICEServer{}, fmt.Errorf("ice server %q: %w", redactICE(v), err)
	}
	srv.URLs = []string{scheme + ":" + rest}
	return srv, nil
}

// redactICE hides the credentials of an ICE server URL in error messages.
func redactICE(v string) string {
	scheme, rest, _ := strings.Cut(v, ":")
	if _, host, ok := strings.Cut(rest, "@"); ok {
		return scheme + ":***@" + host
	}
	return v
}

// listenUDPAndTCP binds UDP and TCP on the same port number of host. With port 0 the
// kernel picks the UDP port, which may be taken for TCP: then it tries another one.
func listenUDPAndTCP(host string, port int) (net.PacketConn, net.Listener, error) {
	for attempt := 0; ; attempt++ {
		conn, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, nil, fmt.Errorf("webrtc udp: %w", err)
		}
		got := conn.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(got)))
		if err == nil {
			return conn, ln, nil
		}
		_ = conn.Close()
		if port != 0 || attempt == 20 {
			return nil, nil, fmt.Errorf("webrtc tcp: %w", err)
		}
	}
}
