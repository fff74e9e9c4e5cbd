package control

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/chat"
)

// hookReceiver is a real HTTPS webhook receiver (self-signed, trusted by the env).
type hookReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []hookRequest
	// status answers the n-th request (1-based); nil: 200.
	status func(n int) int
}

type hookRequest struct {
	event, sig string
	body       []byte
}

func newHookReceiver(t *testing.T, status func(n int) int) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{status: status}
	rc.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, hookRequest{event: r.Header.Get("X-Portal-Event"), sig: r.Header.Get("X-Portal-Signature"), body: body})
		n := len(rc.got)
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.status != nil {
			code = rc.status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *hookReceiver) requests() []hookRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hookRequest(nil), rc.got...)
}

// withHookReceiver trusts rc's certificate, allows loopback and makes retries fast.
func withHookReceiver(rc *hookReceiver) envOpt {
	return withConfig(func(c *Config) {
		c.WebhookAllowLoopback = true
		c.WebhookRootCAs = rc.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		c.WebhookRetryBackoff = time.Millisecond
	})
}

type webhookLogsJSON struct {
	Logs []webhookLogJSON `json:"logs"`
}

func createHook(e *env, admin, url string, events ...string) webhookJSON {
	e.t.Helper()
	var h webhookJSON
	e.call(200, "POST", "/api/webhooks", admin, map[string]any{"name": "hook", "type": "outgoing", "url": url, "events": events}, &h)
	return h
}

func hookLogs(e *env, admin string, id int64) []webhookLogJSON {
	e.t.Helper()
	var l webhookLogsJSON
	e.call(200, "GET", fmt.Sprintf("/api/webhooks/%d/logs?limit=100", id), admin, nil, &l)
	return l.Logs
}

func verifySignature(t *testing.T, secret string, r hookRequest) {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(r.body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(r.sig), []byte(want)) {
		t.Fatalf("signature %q, want %q", r.sig, want)
	}
}

func TestWebhookCreateSecretOnceSealedAtRest(t *testing.T) {
	rc := newHookReceiver(t, nil)
	e := newEnv(t, withHookReceiver(rc))
	admin := e.setup()
	bob := e.user(admin, "bob")
	e.wantError(403, "POST", "/api/webhooks", bob, map[string]any{"name": "x", "type": "outgoing", "url": rc.srv.URL, "events": []string{"stream.live"}})

	url := rc.srv.URL + "/hooks/very-secret-path"
	h := createHook(e, admin, url, "stream.live", "user.joined")
	if h.Secret == nil || !strings.HasPrefix(*h.Secret, webhookSecretPrefix) || !h.HasSecret || h.Token != nil {
		t.Fatalf("create answer: %+v", h)
	}
	if h.URL == nil || *h.URL != url || !h.Enabled || len(h.Events) != 2 {
		t.Fatalf("create answer: %+v", h)
	}

	raw := e.call(200, "GET", "/api/webhooks", admin, nil, nil)
	if bytes.Contains(raw, []byte(*h.Secret)) || bytes.Contains(raw, []byte(`"secret"`)) {
		t.Fatalf("list shows the secret: %s", raw)
	}
	var list struct {
		Webhooks []map[string]any `json:"webhooks"`
	}
	if err := json.Unmarshal(raw, &list); err != nil || len(list.Webhooks) != 1 {
		t.Fatalf("list: %s", raw)
	}
	for _, k := range []string{"id", "name", "type", "url", "has_secret", "events", "enabled", "consecutive_failures", "created_at"} {
		if _, ok := list.Webhooks[0][k]; !ok {
			t.Errorf("list entry has no %q: %s", k, raw)
		}
	}
	raw = e.call(200, "GET", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, nil, nil)
	if bytes.Contains(raw, []byte(*h.Secret)) {
		t.Fatalf("get shows the secret: %s", raw)
	}

	// Regenerate: a new secret, once.
	var re webhookJSON
	e.call(200, "POST", fmt.Sprintf("/api/webhooks/%d/regenerate-secret", h.ID), admin, nil, &re)
	if re.Secret == nil || *re.Secret == *h.Secret {
		t.Fatalf("regenerate: %+v", re)
	}

	// URL and secrets are not in the database files in clear.
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(e.dbPath + suffix)
		if err != nil {
			continue
		}
		for _, secret := range []string{"very-secret-path", *h.Secret, *re.Secret} {
			if bytes.Contains(b, []byte(secret)) {
				t.Fatalf("%q found in clear in the database file%s", secret, suffix)
			}
		}
	}

	// Update: events and name; bad events and URLs refused.
	var up webhookJSON
	e.call(200, "PUT", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, map[string]any{"name": "renamed", "events": []string{"stream.offline"}}, &up)
	if up.Name != "renamed" || len(up.Events) != 1 || up.Events[0] != "stream.offline" || up.Secret != nil {
		t.Fatalf("update: %+v", up)
	}
	e.wantError(400, "PUT", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, map[string]any{"events": []string{"nope"}})
	e.wantError(400, "PUT", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, map[string]any{"url": "http://example.com/"})

	// At most 25 per user.
	for range maxWebhooksPerUser - 1 {
		createHook(e, admin, url, "stream.live")
	}
	e.wantError(400, "POST", "/api/webhooks", admin, map[string]any{"name": "x", "type": "outgoing", "url": url, "events": []string{"stream.live"}})

	e.call(200, "DELETE", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, nil, nil)
	e.wantError(404, "GET", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, nil)
}

func TestWebhookTestDeliverySigned(t *testing.T) {
	rc := newHookReceiver(t, nil)
	e := newEnv(t, withHookReceiver(rc))
	admin := e.setup()
	h := createHook(e, admin, rc.srv.URL, "stream.live")
	e.call(200, "POST", fmt.Sprintf("/api/webhooks/%d/test", h.ID), admin, nil, nil)
	waitFor(t, 5*time.Second, "test delivery", func() bool { return len(rc.requests()) == 1 })
	r := rc.requests()[0]
	if r.event != EventWebhookTest {
		t.Fatalf("X-Portal-Event %q", r.event)
	}
	verifySignature(t, *h.Secret, r)
	var p struct {
		Event     string         `json:"event"`
		Timestamp string         `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Event != EventWebhookTest || p.Data["webhook_id"] != float64(h.ID) {
		t.Fatalf("payload %s: %v", r.body, err)
	}
	if _, err := time.Parse(time.RFC3339, p.Timestamp); err != nil || !strings.HasSuffix(p.Timestamp, "Z") {
		t.Fatalf("timestamp %q", p.Timestamp)
	}
	waitFor(t, 5*time.Second, "delivery log", func() bool { return len(hookLogs(e, admin, h.ID)) == 1 })
	l := hookLogs(e, admin, h.ID)[0]
	if !l.Success || l.StatusCode != 200 || l.Attempt != 1 || l.Event != EventWebhookTest || l.Payload == nil || *l.Payload != string(r.body) {
		t.Fatalf("log %+v", l)
	}
}

func TestWebhookStreamLiveDelivered(t *testing.T) {
	rc := newHookReceiver(t, nil)
	e := newEnv(t, withHookReceiver(rc))
	admin := e.setup()
	h := createHook(e, admin, rc.srv.URL, EventStreamLive)
	st := e.createStream(admin, map[string]any{"title": "hooked"})
	p, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, 5*time.Second, "stream.live delivery", func() bool { return len(rc.requests()) == 1 })
	r := rc.requests()[0]
	verifySignature(t, *h.Secret, r)
	var pl struct {
		Event string         `json:"event"`
		Data  map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.body, &pl); err != nil || r.event != EventStreamLive || pl.Event != EventStreamLive ||
		pl.Data["stream_id"] != float64(st.ID) || pl.Data["playback_id"] != st.PlaybackID {
		t.Fatalf("delivery %q %s: %v", r.event, r.body, err)
	}
}

func TestWebhookRetriesThenSucceeds(t *testing.T) {
	rc := newHookReceiver(t, func(n int) int {
		if n < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	e := newEnv(t, withHookReceiver(rc))
	admin := e.setup()
	h := createHook(e, admin, rc.srv.URL, EventStreamLive)
	e.call(200, "POST", fmt.Sprintf("/api/webhooks/%d/test", h.ID), admin, nil, nil)
	waitFor(t, 5*time.Second, "3 attempts logged", func() bool { return len(hookLogs(e, admin, h.ID)) == 3 })
	logs := hookLogs(e, admin, h.ID) // newest first
	if !logs[0].Success || logs[0].Attempt != 3 || logs[0].StatusCode != 204 ||
		logs[1].Success || logs[1].Attempt != 2 || logs[1].StatusCode != 500 || logs[1].Error != "HTTP 500" {
		t.Fatalf("logs %+v", logs)
	}
	var got webhookJSON
	e.call(200, "GET", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, nil, &got)
	if got.ConsecutiveFailures != 0 || !got.Enabled {
		t.Fatalf("after success: %+v", got)
	}
}

func TestWebhookAutoDisable(t *testing.T) {
	rc := newHookReceiver(t, func(int) int { return http.StatusBadGateway })
	e := newEnv(t, withHookReceiver(rc))
	admin := e.setup()
	h := createHook(e, admin, rc.srv.URL, EventStreamLive)
	for range webhookDisableAfter {
		e.call(200, "POST", fmt.Sprintf("/api/webhooks/%d/test", h.ID), admin, nil, nil)
	}
	var got webhookJSON
	waitFor(t, 10*time.Second, "auto-disable", func() bool {
		e.call(200, "GET", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, nil, &got)
		return !got.Enabled
	})
	if got.ConsecutiveFailures != webhookDisableAfter {
		t.Fatalf("failures %d", got.ConsecutiveFailures)
	}
	if n := len(rc.requests()); n != webhookDisableAfter*webhookAttempts {
		t.Fatalf("%d requests, want %d", n, webhookDisableAfter*webhookAttempts)
	}
	var notes struct {
		Notifications []notificationJSON `json:"notifications"`
	}
	waitFor(t, 5*time.Second, "notification", func() bool {
		e.call(200, "GET", "/api/notifications", admin, nil, &notes)
		return len(notes.Notifications) > 0 && notes.Notifications[0].Type == "webhook_disabled"
	})
	// Re-enabling resets the count.
	e.call(200, "PUT", fmt.Sprintf("/api/webhooks/%d", h.ID), admin, map[string]any{"enabled": true}, &got)
	if !got.Enabled || got.ConsecutiveFailures != 0 {
		t.Fatalf("re-enabled: %+v", got)
	}
}

func TestWebhookRateLimit(t *testing.T) {
	rc := newHookReceiver(t, nil)
	e := newEnv(t, withHookReceiver(rc))
	admin := e.setup()
	h := createHook(e, admin, rc.srv.URL, EventStreamLive)
	for range webhookDeliveryLimit + 1 {
		e.call(200, "POST", fmt.Sprintf("/api/webhooks/%d/test", h.ID), admin, nil, nil)
	}
	waitFor(t, 10*time.Second, "all logged", func() bool { return len(hookLogs(e, admin, h.ID)) == webhookDeliveryLimit+1 })
	if n := len(rc.requests()); n != webhookDeliveryLimit {
		t.Fatalf("%d delivered, want %d", n, webhookDeliveryLimit)
	}
	limited := 0
	for _, l := range hookLogs(e, admin, h.ID) {
		if strings.HasPrefix(l.Error, "rate limited") {
			limited++
		}
	}
	if limited != 1 {
		t.Fatalf("%d rate-limited logs, want 1", limited)
	}
	// A new window delivers again.
	e.clock.Advance(webhookDeliveryWindow)
	e.call(200, "POST", fmt.Sprintf("/api/webhooks/%d/test", h.ID), admin, nil, nil)
	waitFor(t, 5*time.Second, "delivery in the next window", func() bool { return len(rc.requests()) == webhookDeliveryLimit+1 })
}

func TestWebhookSSRFRefusedAtCreation(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	for _, url := range []string{
		"http://example.com/hook",
		"https://127.0.0.1/hook",
		"https://127.0.0.1:8443/hook",
		"https://localhost/hook",
		"https://10.0.0.1/hook",
		"https://172.16.0.1/hook",
		"https://192.168.1.1/hook",
		"https://169.254.169.254/latest/meta-data",
		"https://[::1]/hook",
		"https://[fe80::1]/hook",
		"https://[fd00::1]/hook",
		"https://[::ffff:127.0.0.1]/hook",
		"https://100.64.0.1/hook",
		"https://0.0.0.0/hook",
		"https://224.0.0.1/hook",
		"https://user:pass@example.com/hook",
		"ftp://example.com/",
		"",
	} {
		msg := e.wantError(400, "POST", "/api/webhooks", admin, map[string]any{"name": "x", "type": "outgoing", "url": url, "events": []string{"stream.live"}})
		if url != "" && !strings.Contains(msg, "refused") {
			t.Errorf("%s: %q", url, msg)
		}
	}
}

func TestWebhookRedirectToPrivateRefused(t *testing.T) {
	rc := newHookReceiver(t, nil)
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://10.0.0.1/internal", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	e := newEnv(t, withHookReceiver(rc), withConfig(func(c *Config) {
		c.WebhookRootCAs.AddCert(redirector.Certificate())
	}))
	admin := e.setup()
	h := createHook(e, admin, redirector.URL, EventStreamLive)
	e.call(200, "POST", fmt.Sprintf("/api/webhooks/%d/test", h.ID), admin, nil, nil)
	waitFor(t, 5*time.Second, "attempts logged", func() bool { return len(hookLogs(e, admin, h.ID)) == webhookAttempts })
	for _, l := range hookLogs(e, admin, h.ID) {
		if l.Success || !strings.Contains(l.Error, "redirect refused") || !strings.Contains(l.Error, "private") {
			t.Fatalf("log %+v", l)
		}
		if strings.Contains(l.Error, redirector.URL) {
			t.Fatalf("log error shows the webhook URL: %q", l.Error)
		}
	}
}

// TestWebhookDialChecksConnectedAddress: the dialer refuses the resolved address itself,
// whatever the URL said (DNS rebinding).
func TestWebhookDialChecksConnectedAddress(t *testing.T) {
	rc := newHookReceiver(t, nil)
	d := &webhookDispatcher{}
	dialer := &net.Dialer{Timeout: time.Second, Control: d.dialControl}
	_, err := dialer.Dial("tcp", rc.srv.Listener.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("dial loopback: %v", err)
	}
	d.allowLoopback = true
	c, err := dialer.Dial("tcp", rc.srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("dial with loopback allowed: %v", err)
	}
	c.Close()
}

func TestWebhookCheckIP(t *testing.T) {
	d := &webhookDispatcher{}
	for _, tc := range []struct {
		ip string
		ok bool
	}{
		{"93.184.216.34", true}, {"2606:2800:220:1:248:1893:25c8:1946", true}, {"100.128.0.1", true},
		{"127.0.0.1", false}, {"::1", false}, {"10.1.2.3", false}, {"172.31.255.255", false}, {"192.168.0.1", false},
		{"169.254.169.254", false}, {"fe80::1", false}, {"fc00::1", false}, {"fd12::1", false}, {"0.0.0.0", false},
		{"::", false}, {"224.0.0.1", false}, {"ff02::1", false}, {"100.64.0.1", false}, {"100.127.255.255", false},
		{"::ffff:10.0.0.1", false}, {"255.255.255.255", false},
	} {
		err := d.checkIP(netip.MustParseAddr(tc.ip))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.ip, err)
		}
	}
}

func TestIncomingWebhook(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	var h webhookJSON
	e.call(200, "POST", "/api/webhooks", admin, map[string]any{"name": "ci", "type": "incoming", "channel_id": 1}, &h)
	if h.Token == nil || !strings.HasPrefix(*h.Token, incomingTokenPrefix) || h.URL != nil || h.ChannelID == nil || *h.ChannelID != 1 {
		t.Fatalf("create incoming: %+v", h)
	}
	e.wantError(400, "POST", "/api/webhooks", admin, map[string]any{"name": "ci", "type": "incoming"})
	e.wantError(404, "POST", "/api/webhooks/incoming/whk_nope", "", map[string]any{"content": "hi"})
	path := "/api/webhooks/incoming/" + *h.Token
	e.wantError(400, "POST", path, "", map[string]any{"content": ""})
	for range incomingRateLimit - 1 {
		e.wantError(501, "POST", path, "", map[string]any{"content": "build passed", "username": "CI"})
	}
	e.wantError(429, "POST", path, "", map[string]any{"content": "build passed"})

	// A regenerated token replaces the old one.
	var re webhookJSON
	e.call(200, "POST", fmt.Sprintf("/api/webhooks/%d/regenerate-secret", h.ID), admin, nil, &re)
	if re.Token == nil || *re.Token == *h.Token {
		t.Fatalf("regenerate: %+v", re)
	}
	e.wantError(404, "POST", path, "", map[string]any{"content": "hi"})
}

func TestWebhookChatEvents(t *testing.T) {
	rc := newHookReceiver(t, nil)
	var srv atomic.Pointer[Server]
	e := newChatEnv(t, "", func(c *Config, cc *chat.Config) {
		c.WebhookAllowLoopback = true
		c.WebhookRootCAs = rc.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		cc.OnEvent = func(ev chat.Event) {
			if s := srv.Load(); s != nil {
				s.ChatEvent(ev)
			}
		}
	})
	srv.Store(e.srv)
	admin := e.setup()
	h := createHook(e.env, admin, rc.srv.URL, EventMessageCreated, EventMessageDeleted, EventUserConnected, EventUserDisconnected)

	events := func() []string {
		var out []string
		for _, r := range rc.requests() {
			out = append(out, r.event)
		}
		return out
	}
	c := e.dialChat(admin, false)
	waitFor(t, 5*time.Second, "user.connected", func() bool { return slices.Contains(events(), EventUserConnected) })
	c.join("general")
	c.send(map[string]any{"type": "message", "channel": "general", "message": "Hello hooks"})
	m := c.expect("message")
	c.send(map[string]any{"type": "delete", "message_id": m["id"]})
	c.expect("message_deleted")
	c.ws.Close()
	waitFor(t, 5*time.Second, "4 events", func() bool { return len(rc.requests()) == 4 })
	for _, want := range []string{EventUserConnected, EventMessageCreated, EventMessageDeleted, EventUserDisconnected} {
		if !slices.Contains(events(), want) {
			t.Fatalf("events %v: no %s", events(), want)
		}
	}
	for _, r := range rc.requests() {
		verifySignature(t, *h.Secret, r)
		if r.event != EventMessageCreated {
			continue
		}
		var p struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]any{"message_id": m["id"], "channel_name": "general", "username": "admin", "content": "Hello hooks"} {
			if p.Data[k] != want {
				t.Errorf("data %s = %v, want %v (%s)", k, p.Data[k], want, r.body)
			}
		}
		if _, ok := p.Data["channel_id"]; !ok {
			t.Errorf("no channel_id: %s", r.body)
		}
	}
}

func TestWebhookUserJoined(t *testing.T) {
	rc := newHookReceiver(t, nil)
	e := newEnv(t, withHookReceiver(rc))
	admin := e.setup()
	createHook(e, admin, rc.srv.URL, EventUserJoined)
	var code struct {
		InviteCode string `json:"invite_code"`
	}
	e.call(200, "GET", "/api/admin/invite-code", admin, nil, &code)
	e.call(200, "POST", "/api/register", "", map[string]string{"username": "newbie", "password": "newbie password", "invite_code": code.InviteCode}, nil)
	waitFor(t, 5*time.Second, "user.joined", func() bool { return len(rc.requests()) == 1 })
	r := rc.requests()[0]
	if r.event != EventUserJoined || !bytes.Contains(r.body, []byte(`"username":"newbie"`)) {
		t.Fatalf("delivery %q %s", r.event, r.body)
	}
}
