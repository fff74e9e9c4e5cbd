package control

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/relaycast/relaycast/control/store"
)

// Webhooks (reference "Webhooks"). Management is admin-only, so every webhook belongs to
// an admin, and an outgoing webhook receives every event it subscribes to, whoever's
// stream or user it concerns.

// Webhook event types.
const (
	EventMessageCreated   = "message.created"
	EventMessageDeleted   = "message.deleted"
	EventUserJoined       = "user.joined"
	EventUserConnected    = "user.connected"
	EventUserDisconnected = "user.disconnected"
	EventWebhookTest      = "webhook.test"
)

// webhookEvents are the events an outgoing webhook may subscribe to.
var webhookEvents = []string{
	EventMessageCreated, EventMessageDeleted, EventStreamLive, EventStreamOffline,
	EventUserJoined, EventUserConnected, EventUserDisconnected, EventWebhookTest,
}

// Limits of the webhook API.
const (
	webhookSealPurpose    = "webhooks"
	maxWebhooksPerUser    = 25
	maxWebhookNameRunes   = 100
	maxWebhookURLBytes    = 2048
	webhookSecretBytes    = 32
	webhookTokenBytes     = 32
	incomingRateLimit     = 10
	incomingRateWindow    = 60 * time.Second
	maxIncomingContent    = 4000
	maxIncomingUsername   = 50
	defaultWebhookLogs    = 50
	maxWebhookLogs        = 100
	webhookTypeOutgoing   = "outgoing"
	webhookTypeIncoming   = "incoming"
	incomingTokenPrefix   = "whk_"
	webhookSecretPrefix   = "whsec_"
	webhookLogKeep        = 7 * 24 * time.Hour
	webhookResolveTimeout = 5 * time.Second
)

// webhookRoutes registers the webhook API.
func (s *Server) webhookRoutes(r *mux.Router) {
	r.Handle("/api/webhooks", s.admin(s.handleListWebhooks)).Methods(http.MethodGet)
	r.Handle("/api/webhooks", s.admin(s.handleCreateWebhook)).Methods(http.MethodPost)
	r.Handle("/api/webhooks/incoming/{token}", s.handle(s.handleIncomingWebhook)).Methods(http.MethodPost)
	r.Handle("/api/webhooks/{id:[0-9]+}", s.admin(s.handleGetWebhook)).Methods(http.MethodGet)
	r.Handle("/api/webhooks/{id:[0-9]+}", s.admin(s.handleUpdateWebhook)).Methods(http.MethodPut)
	r.Handle("/api/webhooks/{id:[0-9]+}", s.admin(s.handleDeleteWebhook)).Methods(http.MethodDelete)
	r.Handle("/api/webhooks/{id:[0-9]+}/logs", s.admin(s.handleWebhookLogs)).Methods(http.MethodGet)
	r.Handle("/api/webhooks/{id:[0-9]+}/test", s.admin(s.handleTestWebhook)).Methods(http.MethodPost)
	r.Handle("/api/webhooks/{id:[0-9]+}/regenerate-secret", s.admin(s.handleRegenerateWebhookSecret)).Methods(http.MethodPost)
}

// webhookJSON is a webhook on the wire. Secret and Token are only set in the answers
// that create or regenerate them.
type webhookJSON struct {
	ID                  int64    `json:"id"`
	Name                string   `json:"name"`
	Type                string   `json:"type"`
	URL                 *string  `json:"url"`
	Secret              *string  `json:"secret,omitempty"`
	HasSecret           bool     `json:"has_secret"`
	Events              []string `json:"events"`
	ChannelID           *int64   `json:"channel_id"`
	Enabled             bool     `json:"enabled"`
	Token               *string  `json:"token"`
	ConsecutiveFailures int      `json:"consecutive_failures"`
	Owner               string   `json:"owner_username,omitempty"`
	CreatedAt           string   `json:"created_at"`
}

// webhookInput is the body of create and update; nil fields are left unchanged on update.
type webhookInput struct {
	Name      *string   `json:"name"`
	Type      *string   `json:"type"`
	URL       *string   `json:"url"`
	Events    *[]string `json:"events"`
	ChannelID *int64    `json:"channel_id"`
	Enabled   *bool     `json:"enabled"`
}

// webhookAAD binds a sealed webhook value to its row and field.
func webhookAAD(id int64, field string) []byte {
	return []byte("webhook:" + strconv.FormatInt(id, 10) + ":" + field)
}

func (s *Server) webhookView(w store.Webhook, withOwner bool) webhookJSON {
	v := webhookJSON{ID: w.ID, Name: w.Name, Type: w.Type, HasSecret: len(w.Secret) > 0, Events: w.Events,
		Enabled: w.Enabled, ConsecutiveFailures: w.ConsecutiveFailures, CreatedAt: apiTime(w.CreatedAt)}
	if v.Events == nil {
		v.Events = []string{}
	}
	if w.Type == webhookTypeOutgoing {
		if u, err := s.webhookKeys.Open(w.URL, webhookAAD(w.ID, "url")); err == nil {
			str := string(u)
			v.URL = &str
		} else {
			s.log.Error("webhook url cannot be opened", "webhook_id", w.ID, "err", err)
		}
	}
	if w.ChannelID > 0 {
		v.ChannelID = &w.ChannelID
	}
	if withOwner {
		v.Owner = w.Owner
	}
	return v
}

// validWebhookEvents checks an outgoing webhook's event list and returns it deduplicated.
func validWebhookEvents(events []string) ([]string, error) {
	var out []string
	for _, e := range events {
		if !slices.Contains(webhookEvents, e) {
			return nil, errorf(http.StatusBadRequest, "unknown event %q (allowed: %s)", e, strings.Join(webhookEvents, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, errorf(http.StatusBadRequest, "events is required for an outgoing webhook")
	}
	return out, nil
}

// checkWebhookURL validates an outgoing URL: HTTPS, a host, and no address of the host
// is forbidden (SSRF). Delivery checks again at connect time.
func (s *Server) checkWebhookURL(ctx context.Context, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errorf(http.StatusBadRequest, "url is required for an outgoing webhook")
	}
	if len(raw) > maxWebhookURLBytes {
		return "", errorf(http.StatusBadRequest, "url longer than %d bytes", maxWebhookURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errorf(http.StatusBadRequest, "invalid url")
	}
	if err := s.webhooks.checkURL(ctx, u); err != nil {
		return "", errorf(http.StatusBadRequest, "url refused: %v", err)
	}
	return u.String(), nil
}

// createWebhook creates a webhook for owner and returns it with its secret (outgoing) or
// token (incoming) in clear, the only time they are shown.
func (s *Server) createWebhook(ctx context.Context, owner store.User, in webhookInput) (webhookJSON, error) {
	var name, typ string
	if in.Name != nil {
		name = strings.TrimSpace(*in.Name)
	}
	if in.Type != nil {
		typ = *in.Type
	}
	if n := len([]rune(name)); n < 1 || n > maxWebhookNameRunes {
		return webhookJSON{}, errorf(http.StatusBadRequest, "name must be 1-%d characters", maxWebhookNameRunes)
	}
	count, err := s.store.CountWebhooks(ctx, owner.ID)
	if err != nil {
		return webhookJSON{}, err
	}
	if count >= maxWebhooksPerUser {
		return webhookJSON{}, errorf(http.StatusBadRequest, "maximum of %d webhooks per user reached", maxWebhooksPerUser)
	}
	w := store.Webhook{UserID: owner.ID, Owner: owner.Username, Name: name, Type: typ, Enabled: true, CreatedAt: s.now()}
	if in.Enabled != nil {
		w.Enabled = *in.Enabled
	}
	var seal func(id int64) ([]byte, []byte)
	var secret, token string
	switch typ {
	case webhookTypeOutgoing:
		if in.Events == nil {
			return webhookJSON{}, errorf(http.StatusBadRequest, "events is required for an outgoing webhook")
		}
		if w.Events, err = validWebhookEvents(*in.Events); err != nil {
			return webhookJSON{}, err
		}
		if in.URL == nil {
			return webhookJSON{}, errorf(http.StatusBadRequest, "url is required for an outgoing webhook")
		}
		u, err := s.checkWebhookURL(ctx, *in.URL)
		if err != nil {
			return webhookJSON{}, err
		}
		secret = newWebhookSecret()
		seal = func(id int64) ([]byte, []byte) {
			w.ID = id
			w.URL = s.webhookKeys.Seal([]byte(u), webhookAAD(id, "url"))
			w.Secret = s.webhookKeys.Seal([]byte(secret), webhookAAD(id, "secret"))
			return w.URL, w.Secret
		}
	case webhookTypeIncoming:
		if in.ChannelID == nil || *in.ChannelID <= 0 {
			return webhookJSON{}, errorf(http.StatusBadRequest, "channel_id is required for an incoming webhook")
		}
		w.ChannelID = *in.ChannelID
		token = incomingTokenPrefix + rand.Text()
		w.TokenHash = hashWebhookToken(token)
	default:
		return webhookJSON{}, errorf(http.StatusBadRequest, "type must be outgoing or incoming")
	}
	id, err := s.store.CreateWebhook(ctx, w, seal)
	if err != nil {
		return webhookJSON{}, err
	}
	w.ID = id
	v := s.webhookView(w, false)
	if secret != "" {
		v.Secret = &secret
	}
	if token != "" {
		v.Token = &token
	}
	s.log.Info("webhook created", "webhook_id", id, "type", typ, "by", owner.ID)
	return v, nil
}

// newWebhookSecret returns a new HMAC signing secret.
func newWebhookSecret() string {
	b := make([]byte, webhookSecretBytes)
	rand.Read(b)
	return webhookSecretPrefix + hex.EncodeToString(b)
}

func hashWebhookToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// webhookFor returns webhook id if p owns it or is an admin (management is admin-only,
// so today every caller is).
func (s *Server) webhookFor(ctx context.Context, p *principal, id int64) (store.Webhook, error) {
	w, err := s.store.Webhook(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && w.UserID != p.User.ID && !p.User.IsAdmin) {
		return store.Webhook{}, errorf(http.StatusNotFound, "webhook not found")
	}
	return w, err
}

// updateWebhook applies in to webhook id.
func (s *Server) updateWebhook(ctx context.Context, p *principal, id int64, in webhookInput) (store.Webhook, error) {
	w, err := s.webhookFor(ctx, p, id)
	if err != nil {
		return w, err
	}
	if in.Type != nil && *in.Type != w.Type {
		return w, errorf(http.StatusBadRequest, "type cannot be changed")
	}
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if n := len([]rune(name)); n < 1 || n > maxWebhookNameRunes {
			return w, errorf(http.StatusBadRequest, "name must be 1-%d characters", maxWebhookNameRunes)
		}
		w.Name = name
	}
	if in.Enabled != nil {
		w.Enabled = *in.Enabled
	}
	switch w.Type {
	case webhookTypeOutgoing:
		if in.ChannelID != nil {
			return w, errorf(http.StatusBadRequest, "channel_id is for incoming webhooks")
		}
		if in.Events != nil {
			if w.Events, err = validWebhookEvents(*in.Events); err != nil {
				return w, err
			}
		}
		if in.URL != nil {
			u, err := s.checkWebhookURL(ctx, *in.URL)
			if err != nil {
				return w, err
			}
			w.URL = s.webhookKeys.Seal([]byte(u), webhookAAD(w.ID, "url"))
		}
	case webhookTypeIncoming:
		if in.URL != nil || in.Events != nil {
			return w, errorf(http.StatusBadRequest, "url and events are for outgoing webhooks")
		}
		if in.ChannelID != nil {
			if *in.ChannelID <= 0 {
				return w, errorf(http.StatusBadRequest, "invalid channel_id")
			}
			w.ChannelID = *in.ChannelID
		}
	}
	if err := s.store.UpdateWebhook(ctx, w); err != nil {
		return w, err
	}
	return s.store.Webhook(ctx, id)
}

// handleListWebhooks answers GET /api/webhooks: the caller's webhooks; an admin sees all,
// with owner usernames.
func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request, p *principal) error {
	var owner int64
	if !p.User.IsAdmin {
		owner = p.User.ID
	}
	hooks, err := s.store.Webhooks(r.Context(), owner)
	if err != nil {
		return err
	}
	out := make([]webhookJSON, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, s.webhookView(h, p.User.IsAdmin))
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
	return nil
}

// handleCreateWebhook answers POST /api/webhooks.
func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in webhookInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	v, err := s.createWebhook(r.Context(), p.User, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// handleGetWebhook answers GET /api/webhooks/{id}.
func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	h, err := s.webhookFor(r.Context(), p, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.webhookView(h, p.User.IsAdmin))
	return nil
}

// handleUpdateWebhook answers PUT /api/webhooks/{id}.
func (s *Server) handleUpdateWebhook(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in webhookInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	h, err := s.updateWebhook(r.Context(), p, id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.webhookView(h, p.User.IsAdmin))
	return nil
}

// handleDeleteWebhook answers DELETE /api/webhooks/{id}; its logs go with it.
func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, err := s.webhookFor(r.Context(), p, id); err != nil {
		return err
	}
	if err := s.store.DeleteWebhook(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
	return nil
}

// webhookLogJSON is a delivery log entry on the wire.
type webhookLogJSON struct {
	ID         int64   `json:"id"`
	Event      string  `json:"event"`
	Payload    *string `json:"payload"`
	StatusCode int     `json:"status_code"`
	Success    bool    `json:"success"`
	Attempt    int     `json:"attempt"`
	DurationMS int64   `json:"duration_ms"`
	Error      string  `json:"error"`
	CreatedAt  string  `json:"created_at"`
}

// handleWebhookLogs answers GET /api/webhooks/{id}/logs?limit=&offset=.
func (s *Server) handleWebhookLogs(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, err := s.webhookFor(r.Context(), p, id); err != nil {
		return err
	}
	limit, offset := defaultWebhookLogs, 0
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return errorf(http.StatusBadRequest, "invalid limit")
		}
		limit = min(limit, maxWebhookLogs)
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return errorf(http.StatusBadRequest, "invalid offset")
		}
	}
	logs, err := s.store.WebhookDeliveries(r.Context(), id, limit, offset)
	if err != nil {
		return err
	}
	out := make([]webhookLogJSON, 0, len(logs))
	for _, d := range logs {
		v := webhookLogJSON{ID: d.ID, Event: d.Event, StatusCode: d.StatusCode, Success: d.Success, Attempt: d.Attempt,
			DurationMS: d.Duration.Milliseconds(), Error: d.Error, CreatedAt: apiTime(d.CreatedAt)}
		if len(d.Payload) > 0 {
			if b, err := s.webhookKeys.Open(d.Payload, webhookAAD(id, "log")); err == nil {
				str := string(b)
				v.Payload = &str
			}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"logs": out})
	return nil
}

// handleTestWebhook answers POST /api/webhooks/{id}/test: a webhook.test event is queued
// for delivery (see the logs for the outcome).
func (s *Server) handleTestWebhook(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	h, err := s.webhookFor(r.Context(), p, id)
	if err != nil {
		return err
	}
	if h.Type != webhookTypeOutgoing {
		return errorf(http.StatusBadRequest, "only outgoing webhooks can be tested")
	}
	if !s.webhooks.enqueue(webhookJob{hookID: id, event: EventWebhookTest, body: s.webhookBody(EventWebhookTest, map[string]any{
		"webhook_id": id, "message": "This is a test event from relaycast.",
	})}) {
		return errorf(http.StatusServiceUnavailable, "webhook delivery queue is full, try again later")
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "test event queued"})
	return nil
}

// handleRegenerateWebhookSecret answers POST /api/webhooks/{id}/regenerate-secret: a new
// signing secret (outgoing) or token (incoming), shown once; the old one stops working.
func (s *Server) handleRegenerateWebhookSecret(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	h, err := s.webhookFor(r.Context(), p, id)
	if err != nil {
		return err
	}
	var secret, token string
	if h.Type == webhookTypeOutgoing {
		secret = newWebhookSecret()
		h.Secret = s.webhookKeys.Seal([]byte(secret), webhookAAD(id, "secret"))
	} else {
		token = incomingTokenPrefix + rand.Text()
		h.TokenHash = hashWebhookToken(token)
	}
	if err := s.store.UpdateWebhook(r.Context(), h); err != nil {
		return err
	}
	v := s.webhookView(h, false)
	if secret != "" {
		v.Secret = &secret
	}
	if token != "" {
		v.Token = &token
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// handleIncomingWebhook answers POST /api/webhooks/incoming/{token} {content, username}.
// The token is the credential. Posting into chat needs a chat hub method to post as a
// bot, which chat.Hub does not have yet: a valid request is answered 501.
func (s *Server) handleIncomingWebhook(w http.ResponseWriter, r *http.Request) error {
	token := mux.Vars(r)["token"]
	h, err := s.store.WebhookByToken(r.Context(), hashWebhookToken(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !h.Enabled) {
		return errorf(http.StatusNotFound, "webhook not found")
	}
	if err != nil {
		return err
	}
	if !s.limit(w, s.webhooks.incomingLimit, strconv.FormatInt(h.ID, 10)) {
		return nil
	}
	var in struct {
		Content  string `json:"content"`
		Username string `json:"username"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if n := len([]rune(strings.TrimSpace(in.Content))); n < 1 || n > maxIncomingContent {
		return errorf(http.StatusBadRequest, "content must be 1-%d characters", maxIncomingContent)
	}
	if len([]rune(in.Username)) > maxIncomingUsername {
		return errorf(http.StatusBadRequest, "username must be at most %d characters", maxIncomingUsername)
	}
	return errorf(http.StatusNotImplemented, "incoming webhook messages are not supported yet: the chat hub cannot post as a bot")
}
