package control

// Two-factor authentication (TOTP, RFC 6238, with backup codes). A user's 2FA state is one
// value sealed at rest in users.totp_secret: the secret, the hashes of the unused backup
// codes and the last time step accepted (a code is never accepted twice). Setup stores a
// pending secret; verify with a code from it enables 2FA and returns ten backup codes,
// shown once; login then needs totp_code (a TOTP code or a backup code, each backup code
// once); disable needs a code too.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/relaycast/relaycast/control/store"
)

// 2FA parameters.
const (
	twoFactorSealPurpose = "totp"
	totpIssuer           = "relaycast"
	totpPeriod           = 30 // seconds
	totpSkew             = 1  // steps accepted either side of now
	backupCodeCount      = 10
)

var (
	errTOTPRequired = errorf(http.StatusUnauthorized, "two-factor code required")
	errTOTPInvalid  = errorf(http.StatusUnauthorized, "invalid two-factor code")
)

// twoFactorState is what is sealed in users.totp_secret.
type twoFactorState struct {
	Secret   string   `json:"secret"`
	Backup   []string `json:"backup,omitempty"` // hex SHA-256 of the unused backup codes
	LastStep int64    `json:"last_step,omitempty"`
}

func twoFactorAAD(userID int64) []byte { return []byte("user:" + strconv.FormatInt(userID, 10)) }

// loadTwoFactor returns the user's state (nil when none), whether it is enabled, and the
// sealed bytes (for the optimistic update).
func (s *Server) loadTwoFactor(ctx context.Context, userID int64) (*twoFactorState, bool, []byte, error) {
	sealed, enabled, err := s.store.TwoFactor(ctx, userID)
	if err != nil || len(sealed) == 0 {
		return nil, enabled, sealed, err
	}
	plain, err := s.totpKeys.Open(sealed, twoFactorAAD(userID))
	if err != nil {
		return nil, enabled, sealed, err
	}
	var st twoFactorState
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, enabled, sealed, err
	}
	return &st, enabled, sealed, nil
}

func (s *Server) sealTwoFactor(userID int64, st *twoFactorState) []byte {
	b, _ := json.Marshal(st)
	return s.totpKeys.Seal(b, twoFactorAAD(userID))
}

// checkCode accepts a TOTP code (within the skew, newer than the last accepted step) or an
// unused backup code, and returns the state to store when it did.
func (s *Server) checkCode(st *twoFactorState, code string) (*twoFactorState, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) == 6 {
		now := s.now().Unix() / totpPeriod
		for step := now - totpSkew; step <= now+totpSkew; step++ {
			if step <= st.LastStep {
				continue
			}
			want, err := totp.GenerateCodeCustom(st.Secret, time.Unix(step*totpPeriod, 0),
				totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
				next := *st
				next.LastStep = step
				return &next, true
			}
		}
		return nil, false
	}
	h := backupHash(code)
	for i, b := range st.Backup {
		if subtle.ConstantTimeCompare([]byte(b), []byte(h)) == 1 {
			next := *st
			next.Backup = append(append([]string(nil), st.Backup[:i]...), st.Backup[i+1:]...)
			return &next, true
		}
	}
	return nil, false
}

func backupHash(code string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.ReplaceAll(code, "-", ""))))
	return hex.EncodeToString(sum[:])
}

// newBackupCodes returns n codes like "k3j9-x2pq-7mwe" and their hashes.
func newBackupCodes(n int) (codes, hashes []string) {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	for range n {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		var sb strings.Builder
		for i, c := range b {
			if i > 0 && i%4 == 0 {
				sb.WriteByte('-')
			}
			sb.WriteByte(alphabet[int(c)%len(alphabet)])
		}
		codes = append(codes, sb.String())
		hashes = append(hashes, backupHash(sb.String()))
	}
	return codes, hashes
}

// verifyLoginCode checks the second factor of a login for a user with 2FA enabled and
// consumes what it used.
func (s *Server) verifyLoginCode(ctx context.Context, u store.User, code string) error {
	if strings.TrimSpace(code) == "" {
		return errTOTPRequired
	}
	st, enabled, sealed, err := s.loadTwoFactor(ctx, u.ID)
	if err != nil {
		return err
	}
	if !enabled || st == nil {
		return errTOTPInvalid
	}
	next, ok := s.checkCode(st, code)
	if !ok {
		return errTOTPInvalid
	}
	// Record the use first, only if nobody used the same state meanwhile: a code works once.
	changed, err := s.store.SetTwoFactor(ctx, u.ID, s.sealTwoFactor(u.ID, next), true, sealed)
	if err != nil {
		return err
	}
	if !changed {
		return errTOTPInvalid
	}
	return nil
}

// handleTwoFactorStatus answers GET /api/user/2fa/status.
func (s *Server) handleTwoFactorStatus(w http.ResponseWriter, r *http.Request, p *principal) error {
	st, enabled, _, err := s.loadTwoFactor(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	remaining := 0
	if enabled && st != nil {
		remaining = len(st.Backup)
	}
	writeJSON(w, http.StatusOK, map[string]any{"enabled": enabled, "backup_codes_remaining": remaining})
	return nil
}

// handleTwoFactorSetup answers POST /api/user/2fa/setup: a new secret (pending until
// verified). It is refused while 2FA is enabled: disable it first.
func (s *Server) handleTwoFactorSetup(w http.ResponseWriter, r *http.Request, p *principal) error {
	_, enabled, _, err := s.loadTwoFactor(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	if enabled {
		return errorf(http.StatusBadRequest, "two-factor authentication is already enabled; disable it first")
	}
	raw := make([]byte, 20)
	_, _ = rand.Read(raw)
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: p.User.Username, Secret: raw,
		Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return err
	}
	if _, err := s.store.SetTwoFactor(r.Context(), p.User.ID, s.sealTwoFactor(p.User.ID, &twoFactorState{Secret: secret}), false, nil); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"secret": secret, "provisioning_uri": key.URL()})
	return nil
}

type twoFactorCode struct {
	Code string `json:"code"`
}

// handleTwoFactorVerify answers POST /api/user/2fa/verify: a code from the pending secret
// enables 2FA; the answer holds the backup codes, shown once.
func (s *Server) handleTwoFactorVerify(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req twoFactorCode
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	st, enabled, _, err := s.loadTwoFactor(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	if enabled {
		return errorf(http.StatusBadRequest, "two-factor authentication is already enabled")
	}
	if st == nil {
		return errorf(http.StatusBadRequest, "start with POST /api/user/2fa/setup")
	}
	next, ok := s.checkCode(&twoFactorState{Secret: st.Secret}, req.Code)
	if !ok || len(strings.TrimSpace(req.Code)) != 6 {
		return errorf(http.StatusBadRequest, "invalid code")
	}
	codes, hashes := newBackupCodes(backupCodeCount)
	next.Backup = hashes
	if _, err := s.store.SetTwoFactor(r.Context(), p.User.ID, s.sealTwoFactor(p.User.ID, next), true, nil); err != nil {
		return err
	}
	s.log.Info("two-factor authentication enabled", "user_id", p.User.ID)
	s.addNotification(r.Context(), p.User.ID, notifyTwoFactor, "Two-factor authentication enabled",
		"Two-factor authentication was turned on for your account")
	writeJSON(w, http.StatusOK, map[string]any{"message": "two-factor authentication enabled", "backup_codes": codes})
	return nil
}

// handleTwoFactorDisable answers POST /api/user/2fa/disable (a current code required).
func (s *Server) handleTwoFactorDisable(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req twoFactorCode
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	st, enabled, sealed, err := s.loadTwoFactor(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	if !enabled || st == nil {
		return errorf(http.StatusBadRequest, "two-factor authentication is not enabled")
	}
	if _, ok := s.checkCode(st, req.Code); !ok {
		return errorf(http.StatusBadRequest, "invalid code")
	}
	changed, err := s.store.SetTwoFactor(r.Context(), p.User.ID, nil, false, sealed)
	if err != nil {
		return err
	}
	if !changed {
		return errors.New("two-factor state changed meanwhile")
	}
	s.log.Info("two-factor authentication disabled", "user_id", p.User.ID)
	s.addNotification(r.Context(), p.User.ID, notifyTwoFactor, "Two-factor authentication disabled",
		"Two-factor authentication was turned off for your account")
	writeJSON(w, http.StatusOK, map[string]any{"message": "two-factor authentication disabled"})
	return nil
}
