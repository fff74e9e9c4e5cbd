package control

import (
	"net/http"
)

// handleHealth answers GET /health.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": "relaycast", "version": s.cfg.Version})
	return nil
}

// handleHealthz answers GET /healthz: the process serves HTTP.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// handleReadyz answers GET /readyz: the database answers and Config.Ready passes.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.Ping(r.Context()); err != nil {
		s.log.Warn("not ready", "err", err)
		return errorf(http.StatusServiceUnavailable, "database not ready")
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			return errorf(http.StatusServiceUnavailable, "not ready: %v", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
