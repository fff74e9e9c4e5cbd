package control

// SSH keys: key pairs generated for the user (ed25519 by default, or RSA 3072), for
// example to authenticate their VOD storage. The private key is in the creation answer
// only; the server keeps the public key.

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"golang.org/x/crypto/ssh"

	"github.com/relaycast/relaycast/control/store"
)

const (
	maxSSHKeys    = 50
	maxSSHKeyName = 100
	rsaKeyBits    = 3072
)

func sshKeyView(k store.SSHKey) map[string]any {
	return map[string]any{"id": k.ID, "name": k.Name, "key_type": k.KeyType, "public_key": k.PublicKey,
		"fingerprint": k.Fingerprint, "created_at": apiTime(k.CreatedAt)}
}

// handleCreateSSHKey answers POST /api/ssh-keys {name, key_type}.
func (s *Server) handleCreateSSHKey(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req struct {
		Name    string `json:"name"`
		KeyType string `json:"key_type"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > maxSSHKeyName || strings.ContainsFunc(name, isControl) {
		return errorf(http.StatusBadRequest, "name is required (at most %d characters)", maxSSHKeyName)
	}
	if n, err := s.store.CountSSHKeys(r.Context(), p.User.ID); err != nil {
		return err
	} else if n >= maxSSHKeys {
		return errorf(http.StatusBadRequest, "at most %d SSH keys per user", maxSSHKeys)
	}
	var priv any
	switch req.KeyType {
	case "", "ed25519":
		req.KeyType = "ed25519"
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		priv = k
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
		if err != nil {
			return err
		}
		priv = k
	default:
		return errorf(http.StatusBadRequest, "key_type must be ed25519 or rsa")
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		return err
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	k, err := s.store.CreateSSHKey(r.Context(), store.SSHKey{UserID: p.User.ID, Name: name, KeyType: req.KeyType,
		PublicKey: pub, Fingerprint: ssh.FingerprintSHA256(signer.PublicKey()), CreatedAt: s.now()})
	if err != nil {
		return err
	}
	out := sshKeyView(k)
	out["private_key"] = string(pem.EncodeToMemory(block))
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleListSSHKeys answers GET /api/ssh-keys.
func (s *Server) handleListSSHKeys(w http.ResponseWriter, r *http.Request, p *principal) error {
	keys, err := s.store.SSHKeys(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, sshKeyView(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
	return nil
}

// sshKeyFor returns the caller's key with the route's {id}.
func (s *Server) sshKeyFor(r *http.Request, p *principal) (store.SSHKey, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return store.SSHKey{}, errorf(http.StatusNotFound, "SSH key not found")
	}
	keys, err := s.store.SSHKeys(r.Context(), p.User.ID)
	if err != nil {
		return store.SSHKey{}, err
	}
	for _, k := range keys {
		if k.ID == id {
			return k, nil
		}
	}
	return store.SSHKey{}, errorf(http.StatusNotFound, "SSH key not found")
}

// handleGetSSHKey answers GET /api/ssh-keys/{id}.
func (s *Server) handleGetSSHKey(w http.ResponseWriter, r *http.Request, p *principal) error {
	k, err := s.sshKeyFor(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sshKeyView(k))
	return nil
}

// handleDeleteSSHKey answers DELETE /api/ssh-keys/{id}.
func (s *Server) handleDeleteSSHKey(w http.ResponseWriter, r *http.Request, p *principal) error {
	k, err := s.sshKeyFor(r, p)
	if err != nil {
		return err
	}
	if err := s.store.DeleteSSHKey(r.Context(), p.User.ID, k.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "SSH key deleted"})
	return nil
}

// handleAuthorizedKeys answers GET /api/ssh-keys/authorized: the public keys, one
// authorized_keys line each (with the key's name as the comment), as text/plain.
func (s *Server) handleAuthorizedKeys(w http.ResponseWriter, r *http.Request, p *principal) error {
	keys, err := s.store.SSHKeys(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k.PublicKey)
		b.WriteString(" ")
		b.WriteString(strings.Map(func(r rune) rune {
			if r == ' ' || isControl(r) {
				return '_'
			}
			return r
		}, k.Name))
		b.WriteString("\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = w.Write([]byte(b.String()))
	return err
}
