package control

import (
	"errors"
	"net/http"

	"github.com/relaycast/relaycast/control/store"
)

// tokenJSON is a login session on the wire; id is the token's jti.
type tokenJSON struct {
	ID         string  `json:"id"`
	CreatedAt  string  `json:"created_at"`
	ExpiresAt  string  `json:"expires_at"`
	LastUsedAt *string `json:"last_used_at"`
	IP         string  `json:"ip"`
	UserAgent  string  `json:"user_agent"`
	Current    bool    `json:"current"`
}

// handleListTokens answers GET /api/tokens: the caller's active login tokens.
func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request, p *principal) error {
	list, err := s.store.ListActiveSessions(r.Context(), p.User.ID, s.now())
	if err != nil {
		return err
	}
	out := make([]tokenJSON, 0, len(list))
	for _, x := range list {
		out = append(out, tokenJSON{ID: x.JTI, CreatedAt: apiTime(x.CreatedAt), ExpiresAt: apiTime(x.ExpiresAt),
			LastUsedAt: apiTimePtr(x.LastUsedAt), IP: x.LastIP, UserAgent: x.LastUA, Current: x.JTI == p.JTI})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

// handleRevokeToken answers POST /api/token/revoke {token_id}.
func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req struct {
		TokenID string `json:"token_id"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.TokenID == "" {
		return errorf(http.StatusBadRequest, "token_id is required")
	}
	if err := s.store.RevokeSession(r.Context(), p.User.ID, req.TokenID); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "token not found")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "token revoked"})
	return nil
}
