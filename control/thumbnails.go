package control

// Stream thumbnails: a custom image the owner uploads (validated and re-encoded as JPEG, so
// no metadata such as a photo's location survives), else, while the stream is live, a
// dynamic JPEG of its newest keyframe (Config.Thumbnails, cached 15 s).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png" // accepted upload format
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/egress"
)

// Thumbnail limits.
const (
	maxThumbnailUpload = 2 << 20 // bytes, as the reference says
	maxThumbnailSide   = 4096    // pixels
	thumbnailMaxAge    = 15      // seconds of client and CDN caching
)

// Thumbnailer makes a JPEG of a live stream's newest keyframe. egress/thumb satisfies it.
type Thumbnailer interface {
	JPEG(ctx context.Context, stream string) ([]byte, time.Time, error)
}

func (s *Server) thumbnailPath(streamID int64) string {
	return filepath.Join(s.cfg.ThumbnailDir, strconv.FormatInt(streamID, 10)+".jpg")
}

// handleUploadThumbnail answers POST /api/streams/{id}/thumbnail (multipart field
// "thumbnail", JPEG or PNG, at most 2 MB and 4096 px a side).
func (s *Server) handleUploadThumbnail(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	st, err := s.streamFor(r.Context(), p, id, true)
	if err != nil {
		return err
	}
	if s.cfg.ThumbnailDir == "" {
		return errorf(http.StatusNotImplemented, "thumbnails are not stored on this server")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxThumbnailUpload+64<<10)
	f, _, err := r.FormFile("thumbnail")
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "thumbnail larger than 2 MB")
		}
		return errorf(http.StatusBadRequest, "multipart form with a \"thumbnail\" file required")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxThumbnailUpload+1))
	if err != nil {
		return errorf(http.StatusBadRequest, "reading the thumbnail: %v", err)
	}
	if len(data) > maxThumbnailUpload {
		return errorf(http.StatusRequestEntityTooLarge, "thumbnail larger than 2 MB")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || (format != "jpeg" && format != "png") {
		return errorf(http.StatusBadRequest, "thumbnail must be a JPEG or PNG image")
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxThumbnailSide || cfg.Height > maxThumbnailSide {
		return errorf(http.StatusBadRequest, "thumbnail must be at most %d×%d pixels", maxThumbnailSide, maxThumbnailSide)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return errorf(http.StatusBadRequest, "thumbnail does not decode: %v", err)
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: 88}); err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.ThumbnailDir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.cfg.ThumbnailDir, ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.thumbnailPath(st.ID)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "thumbnail uploaded",
		"thumbnail_url": s.cfg.PublicURL + "/api/stream/" + st.PlaybackID + "/thumbnail"})
	return nil
}

// handleDeleteThumbnail answers DELETE /api/streams/{id}/thumbnail.
func (s *Server) handleDeleteThumbnail(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	st, err := s.streamFor(r.Context(), p, id, true)
	if err != nil {
		return err
	}
	if s.cfg.ThumbnailDir == "" {
		return errorf(http.StatusNotFound, "no custom thumbnail")
	}
	if err := os.Remove(s.thumbnailPath(st.ID)); errors.Is(err, os.ErrNotExist) {
		return errorf(http.StatusNotFound, "no custom thumbnail")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "thumbnail deleted"})
	return nil
}

// handleThumbnail answers GET /api/stream/{key}/thumbnail: key is a playback id (pub_,
// with the viewer's credential for a private stream), a playback token (ptk_) or the
// stream's publish key (live_). The custom thumbnail if there is one, else a dynamic one
// while the stream is live, else 404.
func (s *Server) handleThumbnail(w http.ResponseWriter, r *http.Request) error {
	key := mux.Vars(r)["key"]
	var st store.Stream
	var err error
	if strings.HasPrefix(key, "live_") {
		st, err = s.store.StreamByKeyHash(r.Context(), hashSecret(key))
		if errors.Is(err, store.ErrNotFound) {
			return errStreamNotFound
		}
	} else {
		token := r.URL.Query().Get("token")
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && token == "" {
			token = strings.TrimSpace(v)
		}
		var id string
		id, err = s.Resolve(r.Context(), egress.Request{Protocol: "thumbnail", ID: key, Token: token, RemoteAddr: r.RemoteAddr})
		switch {
		case errors.Is(err, egress.ErrNotFound):
			return errStreamNotFound
		case errors.Is(err, egress.ErrForbidden):
			return errorf(http.StatusForbidden, "this stream is private")
		case err == nil:
			st, err = s.store.StreamByPlaybackID(r.Context(), id)
		}
	}
	if err != nil {
		return err
	}
	cache := fmt.Sprintf("max-age=%d", thumbnailMaxAge)
	if st.IsPublic {
		cache = "public, " + cache
	} else {
		cache = "private, " + cache
	}
	if s.cfg.ThumbnailDir != "" {
		if f, err := os.Open(s.thumbnailPath(st.ID)); err == nil {
			defer f.Close()
			fi, _ := f.Stat()
			w.Header().Set("Content-Type", "image/jpeg")
			w.Header().Set("Cache-Control", cache)
			http.ServeContent(w, r, "thumbnail.jpg", fi.ModTime(), f)
			return nil
		}
	}
	if st.IsLive != store.Live || s.cfg.Thumbnails == nil {
		return errorf(http.StatusNotFound, "no thumbnail: the stream is offline")
	}
	jpg, at, err := s.cfg.Thumbnails.JPEG(r.Context(), st.PlaybackID)
	if err != nil {
		s.log.Debug("dynamic thumbnail", "stream_id", st.ID, "err", err)
		return errorf(http.StatusNotFound, "no thumbnail yet")
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("Last-Modified", at.UTC().Format(http.TimeFormat))
	_, err = w.Write(jpg)
	return err
}
