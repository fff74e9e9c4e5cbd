package signal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// deleteTimeout bounds the DELETE that Client.Close sends.
const deleteTimeout = 5 * time.Second

// maxErrorBody caps how much of a refusal's body a StatusError keeps.
const maxErrorBody = 4 << 10

// NewAPI returns a pion API for WHIP and WHEP clients (and for servers in tests): pion's
// default codecs and interceptors (NACK, RTCP reports, TWCC), host candidates including
// loopback ones — so that a server bound to 127.0.0.1 is reachable — and no mDNS (no
// multicast socket per peer connection; candidates are IP addresses). With loopbackOnly,
// ICE gathers only loopback UDP4 candidates: quicker, and deterministic for tests on one
// host.
func NewAPI(loopbackOnly bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("webrtc codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		return nil, fmt.Errorf("webrtc interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if loopbackOnly {
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(se)), nil
}

// StatusError is an endpoint's refusal: an answer other than the one the exchange
// expects (201 to a POST, 200 to a DELETE).
type StatusError struct {
	// Method is the request's: "POST" or "DELETE".
	Method string
	// StatusCode is the answer's HTTP status.
	StatusCode int
	// Message is the "error" of relaycast's {"error","status"} body, else the start of the
	// body.
	Message string
	// Body is the body as received, at most 4 KiB.
	Body []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %d %s: %s", e.Method, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// HTTPClient sends the POST and the DELETE. Default: http.DefaultClient.
	HTTPClient *http.Client
	// Token, if set, goes with every request as "Authorization: Bearer". WHEP: the owner's
	// credential for a private stream. WHIP: relaycast ignores it (the key is in the URL).
	Token string
}

// Client is the client half of one WHIP or WHEP session (RFC 9725 §4.2): given a peer
// connection whose transceivers the caller set up, it makes the offer with all its
// candidates (it does not trickle), POSTs it, applies the answer, waits for the
// connection, and ends the session with DELETE.
//
// The Client registers the peer connection's OnConnectionStateChange handler: callers
// must not replace it. Errors never contain the endpoint URL, which carries a stream key
// or a playback token.
type Client struct {
	cfg   ClientConfig
	pc    *webrtc.PeerConnection
	offer string

	connected chan struct{} // closed when the peer connection first connects
	ended     chan struct{} // closed when it fails or closes
	connOnce  sync.Once
	endOnce   sync.Once

	mu        sync.Mutex
	resource  string // absolute URL of the session resource, once answered
	posted    bool
	closeOnce sync.Once
	closeErr  error
}

// NewClient makes pc's offer: it sets the local description and waits, bounded by ctx,
// until ICE gathering completes. From then on the Client owns pc (Close closes it); on
// error pc is closed.
func NewClient(ctx context.Context, pc *webrtc.PeerConnection, cfg ClientConfig) (*Client, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	c := &Client{cfg: cfg, pc: pc, connected: make(chan struct{}), ended: make(chan struct{})}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			c.connOnce.Do(func() { close(c.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			c.endOnce.Do(func() { close(c.ended) })
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		_ = pc.Close()
		return nil, fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	c.offer = pc.LocalDescription().SDP
	return c, nil
}

// Offer returns the SDP offer, with the client's candidates.
func (c *Client) Offer() string { return c.offer }

// PeerConnection returns the session's peer connection.
func (c *Client) PeerConnection() *webrtc.PeerConnection { return c.pc }

// Resource returns the absolute URL of the session resource ("" before an answer).
func (c *Client) Resource() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resource
}

// Connect POSTs the offer to endpoint (a WHIP or WHEP URL), applies the answer and waits,
// bounded by ctx, until the peer connection is connected (ICE and DTLS). A refusal is a
// *StatusError. Connect may be called once; after an error, Close ends what was started
// (the session resource, if the server answered).
func (c *Client) Connect(ctx context.Context, endpoint string) error {
	c.mu.Lock()
	posted := c.posted
	c.posted = true
	c.mu.Unlock()
	if posted {
		return errors.New("connect: already called")
	}
	base, err := url.Parse(endpoint)
	if err != nil {
		return errors.New("connect: invalid endpoint URL") // the URL holds a secret
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(c.offer))
	if err != nil {
		return errors.New("connect: invalid endpoint URL")
	}
	req.Header.Set("Content-Type", contentTypeSDP)
	c.authorize(req)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST: %w", stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return newStatusError(http.MethodPost, resp)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return errors.New("POST: answer without a valid Location")
	}
	c.mu.Lock()
	c.resource = base.ResolveReference(loc).String()
	c.mu.Unlock()
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != contentTypeSDP {
		return fmt.Errorf("POST: answer content type %q, want %s", resp.Header.Get("Content-Type"), contentTypeSDP)
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxSDPSize+1))
	if err != nil {
		return fmt.Errorf("POST: reading the answer: %w", stripURL(err))
	}
	if len(answer) > maxSDPSize {
		return errors.New("POST: answer too large")
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer,
		SDP: string(answer)}); err != nil {
		return fmt.Errorf("set remote description: %w", err)
	}
	select {
	case <-c.connected:
		return nil
	case <-c.ended:
		return errors.New("connect: peer connection failed")
	case <-ctx.Done():
		return fmt.Errorf("connect: waiting for ICE and DTLS: %w", ctx.Err())
	}
}

// Done is closed when the peer connection fails or closes.
func (c *Client) Done() <-chan struct{} { return c.ended }

// Close ends the session: DELETE on its resource (if the server answered the POST), then
// the peer connection's close. It returns the DELETE's error (a *StatusError unless the
// answer is 200). It is safe to call twice; later calls return the first one's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		if res := c.Resource(); res != "" {
			errs = append(errs, c.delete(res))
		}
		errs = append(errs, c.pc.Close())
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

func (c *Client) delete(resource string) error {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, resource, nil)
	if err != nil {
		return errors.New("DELETE: invalid resource URL")
	}
	c.authorize(req)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE: %w", stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return newStatusError(http.MethodDelete, resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return nil
}

func (c *Client) authorize(req *http.Request) {
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
}

// newStatusError reads a refusal's body.
func newStatusError(method string, resp *http.Response) *StatusError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &StatusError{Method: method, StatusCode: resp.StatusCode, Body: b}
	var body errorBody
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = string(bytes.TrimSpace(b[:min(len(b), 200)]))
	}
	return e
}

// stripURL drops the request URL from a transport error: it holds a stream key or a
// playback token.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
