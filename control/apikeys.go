package control

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/relaycast/relaycast/control/store"
)

// API key limits.
const (
	maxAPIKeyName       = 100
	maxAPIKeyExpiryDays = 3650
)

// apiKeyJSON is an API key on the wire. APIKey (the full key) is set only in the answer
// to its creation.
type apiKeyJSON struct {
	ID         int64   `json:"id"`
	Name       string  `json:"name"`
	APIKey     string  `json:"api_key,omitempty"`
	KeyPrefix  string  `json:"key_prefix"`
	Scopes     string  `json:"scopes"`
	CreatedAt  string  `json:"created_at"`
	ExpiresAt  *string `json:"expires_at"`
	LastUsedAt *string `json:"last_used_at"`
	Revoked    bool    `json:"revoked"`
}

func apiKeyView(k store.APIKey, full string) apiKeyJSON {
	return apiKeyJSON{ID: k.ID, Name: k.Name, APIKey: full, KeyPrefix: k.Prefix, Scopes: k.Scopes,
		CreatedAt: apiTime(k.CreatedAt), ExpiresAt: apiTimePtr(k.ExpiresAt), LastUsedAt: apiTimePtr(k.LastUsedAt), Revoked: k.Revoked}
}

type createAPIKeyRequest struct {
	Name          string `json:"name"`
	Scopes        string `json:"scopes"`
	ExpiresInDays *int   `json:"expires_in_days"`
}

// createAPIKey validates req and creates a key for userID; it returns the key and its
// full value (to be shown once).
func (s *Server) createAPIKey(ctx context.Context, userID int64, req createAPIKeyRequest) (store.APIKey, string, error) {
	if n := trimmedLen(req.Name); n == 0 || n > maxAPIKeyName {
		return store.APIKey{}, "", errorf(http.StatusBadRequest, "name is required (at most %d characters)", maxAPIKeyName)
	}
	scopes, err := parseScopes(req.Scopes)
	if err != nil {
		return store.APIKey{}, "", err
	}
	now := s.now()
	var exp time.Time
	if d := req.ExpiresInDays; d != nil {
		if *d < 1 || *d > maxAPIKeyExpiryDays {
			return store.APIKey{}, "", errorf(http.StatusBadRequest, "expires_in_days must be 1-%d, or null for never", maxAPIKeyExpiryDays)
		}
		exp = now.AddDate(0, 0, *d)
	}
	full, hash, prefix := newSecret(kindAPIKey)
	k, err := s.store.CreateAPIKey(ctx, store.APIKey{UserID: userID, Name: req.Name, Hash: hash, Prefix: prefix,
		Scopes: scopes, CreatedAt: now, ExpiresAt: exp})
	return k, full, err
}

// handleCreateAPIKey answers POST /api/api-keys.
func (s *Server) handleCreateAPIKey(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req createAPIKeyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	k, full, err := s.createAPIKey(r.Context(), p.User.ID, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiKeyView(k, full))
	return nil
}

// handleListAPIKeys answers GET /api/api-keys (prefixes only).
func (s *Server) handleListAPIKeys(w http.ResponseWriter, r *http.Request, p *principal) error {
	keys, err := s.store.ListAPIKeys(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	out := make([]apiKeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, apiKeyView(k, ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_keys": out})
	return nil
}

// handleRevokeAPIKey answers POST /api/api-keys/{id}/revoke.
func (s *Server) handleRevokeAPIKey(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.store.RevokeAPIKey(r.Context(), p.User.ID, id); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "API key not found")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "API key revoked"})
	return nil
}

// handleDeleteAPIKey answers DELETE /api/api-keys/{id}.
func (s *Server) handleDeleteAPIKey(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.store.DeleteAPIKey(r.Context(), p.User.ID, id); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "API key not found")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "API key deleted"})
	return nil
}
