package control

// VOD storage settings: the API of each user's SFTP storage (GET/POST/DELETE
// /api/vods/storage, POST /api/vods/storage/test), the host-key pinning (trust on first
// use) and the accessors the VOD uploader uses (VODStorage, PinVODHostKey); the input
// and its validation are in vodconfig.go. The wire contract is in doc.go, "VOD storage".

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/vod/storage"
)

// saveVODStorage creates or updates userID's storage from in.
func (s *Server) saveVODStorage(ctx context.Context, userID int64, in vodStorageInput) (store.VODStorage, error) {
	c, creating, err := s.mergeVODConfig(ctx, userID, in)
	if err != nil {
		return store.VODStorage{}, err
	}
	now := s.now()
	row := c.row
	if creating {
		row.CreatedAt = now
	}
	row.UpdatedAt = now
	row.Password = s.sealVOD(userID, "password", c.password)
	row.PrivateKey = s.sealVOD(userID, "private_key", c.privateKey)
	row.Passphrase = s.sealVOD(userID, "passphrase", c.passphrase)
	row, err = s.store.PutVODStorage(ctx, row, c.setHostKey)
	s.vodConns.drop(userID)
	if errors.Is(err, store.ErrNotFound) {
		return store.VODStorage{}, errUnauthorized // the user was deleted meanwhile
	}
	return row, err
}

// deleteVODStorage removes userID's storage; remote files are not touched.
func (s *Server) deleteVODStorage(ctx context.Context, userID int64) error {
	err := s.store.DeleteVODStorage(ctx, userID)
	s.vodConns.drop(userID)
	if errors.Is(err, store.ErrNotFound) {
		return errNoVODStorage
	}
	return err
}

// vodTestResult is the answer of POST /api/vods/storage/test.
type vodTestResult struct {
	Success            bool   `json:"success"`
	Message            string `json:"message"`
	FilesFound         int    `json:"files_found"`
	RemotePath         string `json:"remote_path"`
	HostKey            string `json:"host_key"`
	HostKeyFingerprint string `json:"host_key_fingerprint"`
	HostKeyPinned      bool   `json:"host_key_pinned"`
}

// testVODStorage tests userID's stored storage, with in applied when it has fields (the
// test saves nothing of in). On success the server's host key is pinned in the stored
// storage if none was and the tested storage points at the same host and port.
func (s *Server) testVODStorage(ctx context.Context, userID int64, in vodStorageInput) (vodTestResult, error) {
	var c vodConfig
	var err error
	if in.empty() {
		c, err = s.loadVODConfig(ctx, userID)
	} else {
		c, _, err = s.mergeVODConfig(ctx, userID, in)
	}
	if err != nil {
		return vodTestResult{}, err
	}
	res, err := storage.Test(ctx, c.storageConfig(s.cfg.VODDialTimeout))
	if err != nil {
		return vodTestResult{}, vodError(err)
	}
	out := vodTestResult{
		Success:            true,
		Message:            fmt.Sprintf("connection successful: %d MKV files found", res.MKVFiles),
		FilesFound:         res.MKVFiles,
		RemotePath:         res.RemotePath,
		HostKey:            res.HostKey,
		HostKeyFingerprint: res.Fingerprint,
	}
	stored, err := s.store.VODStorage(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return out, nil
	case err != nil:
		return vodTestResult{}, err
	case stored.Host != c.row.Host || stored.Port != c.row.Port:
		return out, nil
	case stored.HostKey == "":
		if _, err := s.store.PinVODHostKey(ctx, userID, stored.Host, stored.Port, res.HostKey); err != nil {
			return vodTestResult{}, err
		}
		s.log.Info("vod storage host key pinned", "user_id", userID, "fingerprint", res.Fingerprint)
		out.HostKeyPinned = true
	default:
		out.HostKeyPinned = stored.HostKey == res.HostKey
	}
	return out, nil
}

// VODStorage returns the storage configuration of userID for the VOD uploader: its
// secrets opened, its HostKey pinned (empty until the first connection: the caller then
// pins the key it saw with PinVODHostKey), and whether recording is enabled. A user
// without storage gets a zero Config (Host "") and false. The Config's secrets must not
// be logged other than through its String method, which redacts them.
func (s *Server) VODStorage(ctx context.Context, userID int64) (storage.Config, bool, error) {
	c, err := s.loadVODConfig(ctx, userID)
	if errors.Is(err, errNoVODStorage) {
		return storage.Config{}, false, nil
	}
	if err != nil {
		return storage.Config{}, false, fmt.Errorf("control: vod storage of user %d: %w", userID, err)
	}
	return c.storageConfig(s.cfg.VODDialTimeout), c.row.RecordingEnabled, nil
}

// PinVODHostKey pins key (authorized_keys format, as storage.HostKey.String returns it)
// for userID's storage when none is pinned yet: trust on first use. A key equal to the
// pinned one is not an error; another one is a *storage.HostKeyMismatchError. It returns
// store.ErrNotFound when the user has no storage.
//
// The key is pinned for the host and port the storage has when PinVODHostKey runs: a
// caller that learnt it from a Config read before the user pointed the storage elsewhere
// pins the old server's key, and the next connection reports a mismatch.
func (s *Server) PinVODHostKey(ctx context.Context, userID int64, key string) error {
	k, err := storage.ParseHostKey(key)
	if err != nil {
		return fmt.Errorf("control: pin vod host key: %w", err)
	}
	for range 2 {
		row, err := s.store.VODStorage(ctx, userID)
		if err != nil {
			return fmt.Errorf("control: pin vod host key: %w", err)
		}
		if row.HostKey != "" {
			if row.HostKey == k.String() {
				return nil
			}
			pinned, _ := storage.ParseHostKey(row.HostKey)
			return &storage.HostKeyMismatchError{Expected: pinned.Fingerprint(), Presented: k.Fingerprint(), PresentedKey: k}
		}
		ok, err := s.store.PinVODHostKey(ctx, userID, row.Host, row.Port, k.String())
		if err != nil {
			return err
		}
		if ok {
			s.log.Info("vod storage host key pinned", "user_id", userID, "fingerprint", k.Fingerprint())
			return nil
		}
		// The row changed between the read and the update: look again.
	}
	return fmt.Errorf("control: pin vod host key: the storage of user %d keeps changing", userID)
}

// vodStorageJSON is a storage on the wire: secrets redacted to has_*, the pinned host key
// shown so that the user can check it. Field order is the wire order.
type vodStorageJSON struct {
	Host               string  `json:"host"`
	Port               int     `json:"port"`
	Username           string  `json:"username"`
	AuthMethod         string  `json:"auth_method"`
	RemotePath         string  `json:"remote_path"`
	HasPassword        bool    `json:"has_password"`
	HasKey             bool    `json:"has_key"`
	HasPassphrase      bool    `json:"has_passphrase"`
	HostKey            *string `json:"host_key"`
	HostKeyFingerprint *string `json:"host_key_fingerprint"`
	RecordingEnabled   bool    `json:"recording_enabled"`
	CreatedAt          string  `json:"created_at"`
	UpdatedAt          string  `json:"updated_at"`
}

func vodStorageView(row store.VODStorage) vodStorageJSON {
	v := vodStorageJSON{
		Host: row.Host, Port: row.Port, Username: row.Username, AuthMethod: row.AuthMethod, RemotePath: row.RemotePath,
		HasPassword: len(row.Password) > 0, HasKey: len(row.PrivateKey) > 0, HasPassphrase: len(row.Passphrase) > 0,
		RecordingEnabled: row.RecordingEnabled, CreatedAt: apiTime(row.CreatedAt), UpdatedAt: apiTime(row.UpdatedAt),
	}
	if k, err := storage.ParseHostKey(row.HostKey); row.HostKey != "" && err == nil {
		key, fp := k.String(), k.Fingerprint()
		v.HostKey, v.HostKeyFingerprint = &key, &fp
	}
	return v
}

// handleGetVODStorage answers GET /api/vods/storage: {"storage": storage} or
// {"storage": null} when none is configured.
func (s *Server) handleGetVODStorage(w http.ResponseWriter, r *http.Request, p *principal) error {
	row, err := s.store.VODStorage(r.Context(), p.User.ID)
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusOK, map[string]any{"storage": nil})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"storage": vodStorageView(row)})
	return nil
}

// handleSaveVODStorage answers POST /api/vods/storage.
func (s *Server) handleSaveVODStorage(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in vodStorageInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	row, err := s.saveVODStorage(r.Context(), p.User.ID, in)
	if err != nil {
		return err
	}
	s.log.Info("vod storage saved", "user_id", p.User.ID, "host", row.Host, "port", row.Port, "auth_method", row.AuthMethod)
	writeJSON(w, http.StatusOK, map[string]any{"message": "storage saved", "storage": vodStorageView(row)})
	return nil
}

// handleDeleteVODStorage answers DELETE /api/vods/storage.
func (s *Server) handleDeleteVODStorage(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.deleteVODStorage(r.Context(), p.User.ID); err != nil {
		return err
	}
	s.log.Info("vod storage removed", "user_id", p.User.ID)
	writeJSON(w, http.StatusOK, map[string]string{"message": "storage removed"})
	return nil
}

// handleTestVODStorage answers POST /api/vods/storage/test (the body is optional).
func (s *Server) handleTestVODStorage(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in vodStorageInput
	if err := decodeOptionalJSON(w, r, &in); err != nil {
		return err
	}
	res, err := s.testVODStorage(r.Context(), p.User.ID, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
