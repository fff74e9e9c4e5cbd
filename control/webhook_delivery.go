package control

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/relaycast/relaycast/chat"
	"github.com/relaycast/relaycast/control/store"
)

// Delivery of outgoing webhooks.
//
// Events are queued (bounded, never blocking the caller: a full queue drops the event and
// counts it) and a small pool of workers delivers them: a signed JSON POST, retried with
// exponential backoff on network errors, 429 and 5xx. Each webhook gets at most
// webhookDeliveryLimit deliveries per webhookDeliveryWindow; the rest are logged as rate
// limited and dropped. Every attempt is logged (payload sealed). After
// webhookDisableAfter deliveries in a row fail, the webhook is disabled and its owner
// notified.
//
// SSRF: the URL's addresses are checked at creation, and at every delivery the dialer
// checks the address it actually connects to (so a DNS answer that changed since, DNS
// rebinding, cannot reach a forbidden address); redirects are re-checked (HTTPS only, at
// most webhookMaxRedirects). No proxy is used.

// Delivery limits.
const (
	webhookWorkers        = 4
	webhookQueueSize      = 512
	webhookAttempts       = 3
	webhookDefaultBackoff = time.Second
	webhookDeliveryLimit  = 30
	webhookDeliveryWindow = 60 * time.Second
	webhookDisableAfter   = 10
	webhookTimeout        = 10 * time.Second
	webhookMaxRedirects   = 3
	webhookMaxResponse    = 64 << 10
	webhookDropLogEvery   = time.Minute
)

// webhookJob is one queued event: for one webhook, or (hookID 0) for every enabled
// outgoing webhook subscribed to the event.
type webhookJob struct {
	hookID int64
	event  string
	body   []byte
}

// webhookDispatcher owns the delivery queue, its workers and the HTTP client.
type webhookDispatcher struct {
	s             *Server
	allowLoopback bool
	backoff       time.Duration
	client        *http.Client
	queue         chan webhookJob
	limit         *rateLimiter // deliveries per webhook
	incomingLimit *rateLimiter // incoming posts per webhook token
	ctx           context.Context
	cancel        context.CancelFunc
	dropped       atomic.Uint64
	lastDropLog   atomic.Int64
}

// webhookPayload is the body of every outgoing webhook POST (reference "Outgoing Webhook
// Payload Format").
type webhookPayload struct {
	Event     string `json:"event"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// startWebhooks makes the webhook sealer and dispatcher, starts the workers (owned by
// s.wg, stopped by s.stop) and subscribes to stream events.
func (s *Server) startWebhooks() error {
	keys, err := NewSealer(s.cfg.SecretKey, webhookSealPurpose)
	if err != nil {
		return err
	}
	s.webhookKeys = keys
	d := &webhookDispatcher{
		s:             s,
		allowLoopback: s.cfg.WebhookAllowLoopback,
		backoff:       s.cfg.WebhookRetryBackoff,
		queue:         make(chan webhookJob, webhookQueueSize),
		limit:         newRateLimiter(webhookDeliveryLimit, webhookDeliveryWindow, s.now),
		incomingLimit: newRateLimiter(incomingRateLimit, incomingRateWindow, s.now),
	}
	if d.backoff <= 0 {
		d.backoff = webhookDefaultBackoff
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	dialer := &net.Dialer{Timeout: webhookTimeout, Control: d.dialControl}
	d.client = &http.Client{
		Timeout: webhookTimeout,
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would connect on our behalf, past the address check
			DialContext:           dialer.DialContext,
			TLSClientConfig:       &tls.Config{RootCAs: s.cfg.WebhookRootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   webhookTimeout,
			ResponseHeaderTimeout: webhookTimeout,
			MaxIdleConns:          16,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: d.checkRedirect,
	}
	s.webhooks = d
	s.wg.Add(webhookWorkers + 1)
	for range webhookWorkers {
		go d.run()
	}
	go func() {
		defer s.wg.Done()
		<-s.stop
		d.cancel()
		d.client.CloseIdleConnections()
	}()
	s.Subscribe(func(e StreamEvent) {
		s.emitWebhook(e.Type, map[string]any{"stream_id": e.StreamID, "playback_id": e.PlaybackID, "user_id": e.OwnerID})
	})
	return nil
}

// ChatEvent turns a chat event (chat.Config.OnEvent) into the webhook event of the same
// name. It never blocks.
func (s *Server) ChatEvent(e chat.Event) {
	data := map[string]any{"user_id": e.UserID, "username": e.Username}
	switch e.Type {
	case chat.EventMessageCreated, chat.EventMessageDeleted:
		data["message_id"] = e.MessageID
		data["channel_id"] = e.ChannelID
		data["channel_name"] = e.ChannelName
		if e.Type == chat.EventMessageCreated {
			data["content"] = e.Content
		}
	case chat.EventUserConnected, chat.EventUserDisconnected:
	default:
		return
	}
	s.emitWebhook(e.Type.String(), data)
}

// webhookBody encodes the payload of event.
func (s *Server) webhookBody(event string, data any) []byte {
	b, err := json.Marshal(webhookPayload{Event: event, Timestamp: apiTime(s.now()), Data: data})
	if err != nil {
		// data is always a map of plain values built here.
		b, _ = json.Marshal(webhookPayload{Event: event, Timestamp: apiTime(s.now())})
	}
	return b
}

// emitWebhook queues event for every enabled outgoing webhook subscribed to it. It never
// blocks.
func (s *Server) emitWebhook(event string, data any) {
	if s.webhooks == nil {
		return
	}
	s.webhooks.enqueue(webhookJob{event: event, body: s.webhookBody(event, data)})
}

// pruneWebhookLogs deletes delivery logs past webhookLogKeep (janitor).
func (s *Server) pruneWebhookLogs(ctx context.Context, now time.Time) {
	if _, err := s.store.PruneWebhookDeliveries(ctx, now.Add(-webhookLogKeep)); err != nil {
		s.log.Warn("janitor: webhook logs", "err", err)
	}
	if s.webhooks != nil {
		s.webhooks.limit.prune()
		s.webhooks.incomingLimit.prune()
	}
}

// enqueue queues j without waiting; false (and a counted drop) when the queue is full.
func (d *webhookDispatcher) enqueue(j webhookJob) bool {
	select {
	case d.queue <- j:
		return true
	default:
	}
	n := d.dropped.Add(1)
	now := time.Now().UnixNano()
	if last := d.lastDropLog.Load(); now-last > int64(webhookDropLogEvery) && d.lastDropLog.CompareAndSwap(last, now) {
		d.s.log.Warn("webhook queue full: events dropped", "dropped_total", n)
	}
	return false
}

func (d *webhookDispatcher) run() {
	defer d.s.wg.Done()
	for {
		select {
		case <-d.s.stop:
			return
		case j := <-d.queue:
			if j.hookID == 0 {
				d.fanOut(j)
			} else {
				d.deliver(j)
			}
		}
	}
}

// fanOut queues j for each webhook subscribed to its event.
func (d *webhookDispatcher) fanOut(j webhookJob) {
	ctx, cancel := dbCtx()
	defer cancel()
	hooks, err := d.s.store.WebhooksFor(ctx, j.event)
	if err != nil {
		d.s.log.Error("webhooks: list subscribers", "event", j.event, "err", err)
		return
	}
	for _, h := range hooks {
		d.enqueue(webhookJob{hookID: h.ID, event: j.event, body: j.body})
	}
}

// deliver sends j to its webhook, with retries, and records the outcome.
func (d *webhookDispatcher) deliver(j webhookJob) {
	s := d.s
	ctx, cancel := dbCtx()
	h, err := s.store.Webhook(ctx, j.hookID)
	cancel()
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("webhook: load", "webhook_id", j.hookID, "err", err)
		}
		return
	}
	if !h.Enabled || h.Type != webhookTypeOutgoing {
		return
	}
	if ok, _, _ := d.limit.allow(strconv.FormatInt(h.ID, 10)); !ok {
		d.record(h.ID, j, 0, 0, 0, fmt.Sprintf("rate limited: more than %d deliveries in %s", webhookDeliveryLimit, webhookDeliveryWindow))
		return
	}
	rawURL, uerr := s.webhookKeys.Open(h.URL, webhookAAD(h.ID, "url"))
	secret, serr := s.webhookKeys.Open(h.Secret, webhookAAD(h.ID, "secret"))
	if err := errors.Join(uerr, serr); err != nil {
		s.log.Error("webhook: cannot open sealed url or secret", "webhook_id", h.ID, "err", err)
		return
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(j.body)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	for attempt := 1; ; attempt++ {
		start := time.Now()
		status, err := d.post(string(rawURL), sig, j)
		elapsed := time.Since(start)
		msg := ""
		if err != nil {
			msg = err.Error()
		} else if status < 200 || status > 299 {
			msg = "HTTP " + strconv.Itoa(status)
		}
		d.record(h.ID, j, status, attempt, elapsed, msg)
		if msg == "" {
			ctx, cancel := dbCtx()
			if err := s.store.WebhookDelivered(ctx, h.ID); err != nil {
				s.log.Error("webhook: reset failures", "webhook_id", h.ID, "err", err)
			}
			cancel()
			return
		}
		retryable := err != nil || status == http.StatusTooManyRequests || status >= 500
		if !retryable || attempt >= webhookAttempts || d.ctx.Err() != nil {
			break
		}
		t := time.NewTimer(d.backoff << (attempt - 1))
		select {
		case <-d.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	ctx, cancel = dbCtx()
	defer cancel()
	failures, disabled, err := s.store.WebhookFailed(ctx, h.ID, webhookDisableAfter)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("webhook: count failure", "webhook_id", h.ID, "err", err)
		}
		return
	}
	if disabled {
		s.log.Warn("webhook disabled after consecutive failures", "webhook_id", h.ID, "failures", failures)
		s.addNotification(ctx, h.UserID, "webhook_disabled", "Webhook disabled",
			fmt.Sprintf("Webhook %q was disabled after %d consecutive failed deliveries.", h.Name, failures))
	}
}

// post sends one attempt and returns the response status.
func (d *webhookDispatcher) post(rawURL, sig string, j webhookJob) (int, error) {
	ctx, cancel := context.WithTimeout(d.ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(j.body))
	if err != nil {
		return 0, errors.New("invalid url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "relaycast-webhooks")
	req.Header.Set("X-Portal-Event", j.event)
	req.Header.Set("X-Portal-Signature", sig)
	resp, err := d.client.Do(req)
	if err != nil {
		// The url.Error wrapper repeats the URL, which is a secret at rest: keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookMaxResponse))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// record logs one delivery attempt with its payload sealed.
func (d *webhookDispatcher) record(hookID int64, j webhookJob, status, attempt int, elapsed time.Duration, msg string) {
	ctx, cancel := dbCtx()
	defer cancel()
	err := d.s.store.AddWebhookDelivery(ctx, store.WebhookDelivery{
		WebhookID: hookID, Event: j.event, Payload: d.s.webhookKeys.Seal(j.body, webhookAAD(hookID, "log")),
		StatusCode: status, Success: msg == "", Attempt: attempt, Duration: elapsed, Error: msg, CreatedAt: d.s.now(),
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		d.s.log.Warn("webhook: delivery log", "webhook_id", hookID, "err", err)
	}
}

// errForbiddenAddress is the cause of a refused webhook destination.
var errForbiddenAddress = errors.New("destination address not allowed")

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// checkIP refuses the addresses a webhook must not reach: loopback (unless allowed for
// tests), private (RFC 1918, fc00::/7), link-local, unspecified, multicast, CGNAT,
// 0.0.0.0/8 and broadcast.
func (d *webhookDispatcher) checkIP(ip netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return errForbiddenAddress
	case ip.IsLoopback():
		if d.allowLoopback {
			return nil
		}
		return fmt.Errorf("%w: %s is loopback", errForbiddenAddress, ip)
	case ip.IsPrivate():
		return fmt.Errorf("%w: %s is private", errForbiddenAddress, ip)
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is link-local", errForbiddenAddress, ip)
	case ip.IsUnspecified():
		return fmt.Errorf("%w: %s is unspecified", errForbiddenAddress, ip)
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: %s is multicast", errForbiddenAddress, ip)
	case cgnat.Contains(ip):
		return fmt.Errorf("%w: %s is carrier-grade NAT", errForbiddenAddress, ip)
	case ip.Is4() && (ip.As4()[0] == 0 || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255})):
		return fmt.Errorf("%w: %s is reserved", errForbiddenAddress, ip)
	}
	return nil
}

// checkURL refuses a URL that is not HTTPS or whose host has a forbidden address.
func (d *webhookDispatcher) checkURL(ctx context.Context, u *url.URL) error {
	if u.Scheme != "https" {
		return errors.New("only https URLs are allowed")
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not allowed")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return d.checkIP(ip)
	}
	ctx, cancel := context.WithTimeout(ctx, webhookResolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("cannot resolve %s", host)
	}
	for _, ip := range ips {
		if err := d.checkIP(ip); err != nil {
			return err
		}
	}
	return nil
}

// dialControl checks the address the dialer is about to connect to, after resolution.
func (d *webhookDispatcher) dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", errForbiddenAddress, address)
	}
	return d.checkIP(ap.Addr())
}

// checkRedirect allows at most webhookMaxRedirects redirects, to checked HTTPS URLs.
func (d *webhookDispatcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > webhookMaxRedirects {
		return fmt.Errorf("more than %d redirects", webhookMaxRedirects)
	}
	if err := d.checkURL(req.Context(), req.URL); err != nil {
		return fmt.Errorf("redirect refused: %w", err)
	}
	return nil
}
