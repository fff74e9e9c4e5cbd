package control

import (
	"net/http"
	"time"

	"github.com/relaycast/relaycast/vod"
)

// Recorder records live streams to their owners' VOD storage. vod.Service satisfies it.
type Recorder interface {
	// StreamLive starts recording stream (a playback id) for owner when record is set and
	// the owner has storage with recording on. It must not block.
	StreamLive(stream string, owner int64, name string, record bool, start time.Time)
	// Encoding reports whether stream is still being recorded or uploaded.
	Encoding(stream string) bool
	// Uploads returns the upload progress of owner's recording sessions.
	Uploads(owner int64) []vod.SessionUpload
}

// EncodingDone tells that stream (a playback id) has its whole recording on the storage:
// an Encoding stream (is_live 2) becomes Offline. It does not wait; the change is applied
// in order with the stream's other live-state changes.
func (s *Server) EncodingDone(stream string) {
	s.live.push(liveItem{playbackID: stream, encodingDone: true, t: s.now()})
}

// handleVODUploads answers GET /api/vods/uploads (a relaycast extension): the caller's
// recording sessions with their upload progress, newest first.
func (s *Server) handleVODUploads(w http.ResponseWriter, r *http.Request, p *principal) error {
	sessions := []vod.SessionUpload{}
	if s.cfg.VOD != nil {
		if got := s.cfg.VOD.Uploads(p.User.ID); got != nil {
			sessions = got
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": sessions})
	return nil
}
