package control

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/relaycast/relaycast/chat"
	"github.com/relaycast/relaycast/control/store"
)

// ChatHub is the chat server (chat.Hub) as the control plane uses it: it authenticates
// /ws/chat and hands the connection over, serves the chat REST routes through it and
// tells it about streams coming and going.
type ChatHub interface {
	ServeWS(w http.ResponseWriter, r *http.Request, u chat.User)
	Channels(ctx context.Context, u chat.User) ([]chat.ChannelView, error)
	CreateChannel(ctx context.Context, u chat.User, in chat.ChannelInput) (chat.ChannelView, error)
	UpdateChannel(ctx context.Context, u chat.User, id int64, in chat.ChannelInput) (chat.ChannelView, error)
	DeleteChannel(ctx context.Context, u chat.User, id int64) error
	ChannelMessages(ctx context.Context, u chat.User, id, beforeID int64, limit int) ([]chat.MessageView, bool, error)
	Thread(ctx context.Context, u chat.User, id int64) ([]chat.MessageView, error)
	CreateStreamChannel(ctx context.Context, sc chat.StreamChannel) (chat.Channel, error)
	UpdateStreamChannel(ctx context.Context, sc chat.StreamChannel) error
	DeleteStreamChannel(ctx context.Context, streamID int64) error
	DisconnectUser(userID int64)
	OnlineUsers() int
	// SetRetention changes how long messages are kept (the data retention setting).
	SetRetention(d time.Duration)
}

var _ ChatHub = (*chat.Hub)(nil)

// chatRoutes registers /ws/chat and the chat REST routes when chat is on.
func (s *Server) chatRoutes(r *mux.Router) {
	if s.cfg.Chat == nil {
		return
	}
	r.Handle("/ws/chat", s.authed(scopeChatWrite, s.handleChatWS)).Methods(http.MethodGet)
	r.Handle("/api/chat/channels", s.authed(scopeChatRead, s.handleChatChannels)).Methods(http.MethodGet)
	r.Handle("/api/chat/channels", s.authed(scopeChatWrite, s.handleCreateChatChannel)).Methods(http.MethodPost)
	r.Handle("/api/chat/channels/{id:[0-9]+}", s.authed(scopeChatWrite, s.handleUpdateChatChannel)).Methods(http.MethodPut)
	r.Handle("/api/chat/channels/{id:[0-9]+}", s.authed(scopeChatWrite, s.handleDeleteChatChannel)).Methods(http.MethodDelete)
	r.Handle("/api/chat/channels/{id:[0-9]+}/messages", s.authed(scopeChatRead, s.handleChatMessages)).Methods(http.MethodGet)
	r.Handle("/api/chat/thread/{id:[0-9]+}", s.authed(scopeChatRead, s.handleChatThread)).Methods(http.MethodGet)
}

// chatUser is the chat identity of p.
func chatUser(p *principal) chat.User {
	return chat.User{ID: p.User.ID, Username: p.User.Username, Role: chatRole(p.User.IsAdmin)}
}

// chatError maps a chat domain error to the API's error answer.
func chatError(err error) error {
	var ce *chat.Error
	if !errors.As(err, &ce) {
		return err
	}
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, chat.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, chat.ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, chat.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, chat.ErrRateLimited):
		status = http.StatusTooManyRequests
	}
	return errorf(status, "%s", ce.Msg)
}

// hijackable lets the WebSocket upgrade take the connection through the writers that
// wrap the response (statusWriter), which do not implement http.Hijacker themselves; the
// request is recorded as 101.
type hijackable struct{ http.ResponseWriter }

// Hijack implements http.Hijacker.
func (h hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if sw, ok := h.ResponseWriter.(*statusWriter); ok && err == nil && sw.status == 0 {
		sw.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// handleChatWS serves GET /ws/chat: the caller, authenticated like every API request
// (Authorization header or ?token=), is handed to the chat hub, which upgrades and serves
// the connection (or answers 429 past 10 connections, 403 for a foreign Origin).
func (s *Server) handleChatWS(w http.ResponseWriter, r *http.Request, p *principal) error {
	s.cfg.Chat.ServeWS(hijackable{w}, r, chatUser(p))
	return nil
}

// handleChatChannels answers GET /api/chat/channels.
func (s *Server) handleChatChannels(w http.ResponseWriter, r *http.Request, p *principal) error {
	list, err := s.cfg.Chat.Channels(r.Context(), chatUser(p))
	if err != nil {
		return chatError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": list})
	return nil
}

// handleCreateChatChannel answers POST /api/chat/channels {name, description, visibility,
// mode} (admins).
func (s *Server) handleCreateChatChannel(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in chat.ChannelInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	ch, err := s.cfg.Chat.CreateChannel(r.Context(), chatUser(p), in)
	if err != nil {
		return chatError(err)
	}
	s.log.Info("chat channel created", "by", p.User.ID, "channel_id", ch.ID, "name", ch.Name)
	writeJSON(w, http.StatusOK, ch)
	return nil
}

// handleUpdateChatChannel answers PUT /api/chat/channels/{id} (admins).
func (s *Server) handleUpdateChatChannel(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in chat.ChannelInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	ch, err := s.cfg.Chat.UpdateChannel(r.Context(), chatUser(p), id, in)
	if err != nil {
		return chatError(err)
	}
	writeJSON(w, http.StatusOK, ch)
	return nil
}

// handleDeleteChatChannel answers DELETE /api/chat/channels/{id} (admins).
func (s *Server) handleDeleteChatChannel(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Chat.DeleteChannel(r.Context(), chatUser(p), id); err != nil {
		return chatError(err)
	}
	s.log.Info("chat channel deleted", "by", p.User.ID, "channel_id", id)
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	return nil
}

// queryInt64 reads a non-negative integer query parameter (0 when absent).
func queryInt64(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errorf(http.StatusBadRequest, "%s must be a non-negative integer", name)
	}
	return n, nil
}

// handleChatMessages answers GET /api/chat/channels/{id}/messages?limit=&before_id=:
// {"messages": [...newest first], "has_more"}.
func (s *Server) handleChatMessages(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	limit, err := queryInt64(r, "limit")
	if err != nil {
		return err
	}
	before, err := queryInt64(r, "before_id")
	if err != nil {
		return err
	}
	msgs, more, err := s.cfg.Chat.ChannelMessages(r.Context(), chatUser(p), id, before, int(min(limit, 1000)))
	if err != nil {
		return chatError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs, "has_more": more})
	return nil
}

// handleChatThread answers GET /api/chat/thread/{id}: {"messages": [...oldest first]}.
func (s *Server) handleChatThread(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	msgs, err := s.cfg.Chat.Thread(r.Context(), chatUser(p), id)
	if err != nil {
		return chatError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
	return nil
}

// streamChannel describes st for its chat channel.
func streamChannel(st store.Stream) chat.StreamChannel {
	return chat.StreamChannel{StreamID: st.ID, OwnerID: st.UserID, Title: st.Title, Private: !st.IsPublic}
}

// createStreamChannel gives a new stream its chat channel; when that fails the stream is
// deleted again, so that no stream exists without its channel.
func (s *Server) createStreamChannel(ctx context.Context, st *store.Stream) error {
	if s.cfg.Chat == nil {
		return nil
	}
	ch, err := s.cfg.Chat.CreateStreamChannel(ctx, streamChannel(*st))
	if err != nil {
		if derr := s.store.DeleteStream(ctx, st.ID); derr != nil {
			s.log.Error("stream without chat channel left behind", "stream_id", st.ID, "err", derr)
		}
		return err
	}
	st.ChatChannelID = ch.ID
	return nil
}

// updateStreamChannel makes a stream's chat channel follow its title and visibility.
func (s *Server) updateStreamChannel(ctx context.Context, st store.Stream) {
	if s.cfg.Chat == nil {
		return
	}
	if err := s.cfg.Chat.UpdateStreamChannel(ctx, streamChannel(st)); err != nil {
		s.log.Warn("stream chat channel not updated", "stream_id", st.ID, "err", err)
	}
}

// deleteStreamChannel deletes the chat channel of a stream about to be deleted (its
// members are told); the database would delete it with the stream anyway.
func (s *Server) deleteStreamChannel(ctx context.Context, streamID int64) error {
	if s.cfg.Chat == nil {
		return nil
	}
	return s.cfg.Chat.DeleteStreamChannel(ctx, streamID)
}

// chatOnlineUsers is the number of distinct users connected to chat.
func (s *Server) chatOnlineUsers() int {
	if s.cfg.Chat == nil {
		return 0
	}
	return s.cfg.Chat.OnlineUsers()
}
