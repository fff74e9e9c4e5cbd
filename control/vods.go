package control

// VOD files: listing, download (with Range), zip archives and deletion of the recordings
// on a user's SFTP storage, the routes of every VOD endpoint, the connection to the
// storage and the mapping of storage errors to API errors. The wire contract is in
// doc.go, "VOD storage".

import (
	"archive/zip"
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/relaycast/relaycast/vod/storage"
)

// maxArchiveFiles is the most files one POST /api/vods/download-archive may name.
const maxArchiveFiles = 500

// mkvType is the Content-Type of Matroska files.
const mkvType = "video/x-matroska"

// vodRoutes registers the VOD endpoints on r, a router of their own that does not clean
// paths: mux's cleaning would answer "download/../x.mkv" with a redirect to another
// route, where a path with ".." must be refused with 400 like any other traversal.
func (s *Server) vodRoutes(r *mux.Router) {
	r.Handle("/api/vods/storage", s.authed(scopeVODsRead, s.handleGetVODStorage)).Methods(http.MethodGet)
	r.Handle("/api/vods/storage", s.authed(scopeVODsWrite, s.handleSaveVODStorage)).Methods(http.MethodPost)
	r.Handle("/api/vods/storage", s.authed(scopeVODsWrite, s.handleDeleteVODStorage)).Methods(http.MethodDelete)
	r.Handle("/api/vods/storage/test", s.authed(scopeVODsWrite, s.handleTestVODStorage)).Methods(http.MethodPost)
	r.Handle("/api/vods", s.authed(scopeVODsRead, s.handleListVODs)).Methods(http.MethodGet)
	r.Handle("/api/vods/uploads", s.authed(scopeVODsRead, s.handleVODUploads)).Methods(http.MethodGet)
	r.Handle("/api/vods/download-archive", s.authed(scopeVODsRead, s.handleVODArchive)).Methods(http.MethodPost)
	r.Handle("/api/vods/download/{filename:.+}", s.authed(scopeVODsRead, s.handleDownloadVOD)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api/vods/{filename:.+}", s.authed(scopeVODsWrite, s.handleDeleteVOD)).Methods(http.MethodDelete)

	r.Handle("/api/sftp/vod/list", s.authed(scopeVODsRead, s.handleSFTPList)).Methods(http.MethodGet)
	r.Handle("/api/sftp/vod/read", s.authed(scopeVODsRead, s.handleSFTPRead)).Methods(http.MethodGet)
	r.Handle("/api/sftp/vod/download", s.authed(scopeVODsRead, s.handleSFTPDownload)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api/sftp/vod/mkdir", s.authed(scopeVODsWrite, s.handleSFTPMkdir)).Methods(http.MethodPost)
	r.Handle("/api/sftp/vod/upload", s.authed(scopeVODsWrite, s.handleSFTPUpload)).Methods(http.MethodPost)
	r.Handle("/api/sftp/vod/write", s.authed(scopeVODsWrite, s.handleSFTPWrite)).Methods(http.MethodPost)
	r.Handle("/api/sftp/vod/rename", s.authed(scopeVODsWrite, s.handleSFTPRename)).Methods(http.MethodPost)
	r.Handle("/api/sftp/vod/delete", s.authed(scopeVODsWrite, s.handleSFTPDelete)).Methods(http.MethodDelete)
}

// isVODPath reports whether p is served by the VOD router.
func isVODPath(p string) bool {
	return p == "/api/vods" || strings.HasPrefix(p, "/api/vods/") || strings.HasPrefix(p, "/api/sftp/vod/")
}

// vodClient returns a client of userID's storage (errNoVODStorage when it has none): its
// idle one when that still answers, else a new one. A new connection to a storage with no
// pinned host key pins the key the server presented. The caller gives the client back
// with release, telling whether it is still healthy.
func (s *Server) vodClient(ctx context.Context, userID int64) (*storage.Client, func(healthy bool), error) {
	c, err := s.loadVODConfig(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	key := vodConfigKey(c)
	release := func(cl *storage.Client) func(bool) {
		return func(healthy bool) { s.vodConns.put(userID, key, cl, healthy, s.now()) }
	}
	if cl := s.vodConns.take(userID, key); cl != nil {
		if alive(ctx, cl) {
			return cl, release(cl), nil
		}
		cl.Close()
	}
	cl, err := storage.Dial(ctx, c.storageConfig(s.cfg.VODDialTimeout))
	if err != nil {
		mapped := vodError(err)
		var ae *apiError
		if errors.As(mapped, &ae) && strings.HasPrefix(ae.Msg, "VOD storage error: ") {
			addr := net.JoinHostPort(c.row.Host, strconv.Itoa(c.row.Port))
			return nil, nil, errorf(http.StatusBadGateway, "cannot connect to the VOD storage at %s: %s", addr,
				strings.TrimPrefix(ae.Msg, "VOD storage error: "))
		}
		return nil, nil, mapped
	}
	if c.row.HostKey == "" {
		k := cl.HostKey()
		ok, err := s.store.PinVODHostKey(ctx, userID, c.row.Host, c.row.Port, k.String())
		if err != nil {
			cl.Close()
			return nil, nil, err
		}
		if ok {
			s.log.Info("vod storage host key pinned", "user_id", userID, "fingerprint", k.Fingerprint())
			c.row.HostKey = k.String()
			key = vodConfigKey(c)
		}
	}
	return cl, release(cl), nil
}

// withVOD runs fn with a client of userID's storage and gives the client back. rels are
// the paths fn works on, for explain.
func (s *Server) withVOD(ctx context.Context, userID int64, fn func(*storage.Client) error, rels ...string) error {
	c, release, err := s.vodClient(ctx, userID)
	if err != nil {
		return err
	}
	healthy := false // also when fn aborts the response (panics)
	defer func() { release(healthy) }()
	err = explain(c, fn(c), rels...)
	healthy = reusable(err)
	return vodError(err)
}

// explain turns the failure of an operation on one of rels into storage.ErrBadPath when
// that path passes through a symlink leading out of remote_path. The client resolves a
// path on the server component by component and checks only the result, so a path such
// as "link-to-outside-file/x" fails on the way ("not a directory", from a place outside)
// before the check; such a path is a traversal (400), and the message must not describe
// the outside. Successful operations cost nothing; a failure costs one Stat per
// component.
func explain(c *storage.Client, err error, rels ...string) error {
	var ae *apiError
	if err == nil || errors.As(err, &ae) || errors.Is(err, storage.ErrBadPath) || errors.Is(err, context.Canceled) {
		return err
	}
	for _, rel := range rels {
		for i := 0; i <= len(rel); i++ {
			if i < len(rel) && rel[i] != '/' {
				continue
			}
			if _, serr := c.Stat(rel[:i]); errors.Is(serr, storage.ErrBadPath) {
				return serr
			}
		}
	}
	return err
}

// vodError maps an error of the storage client to the API error: what the caller asked
// wrongly is 4xx, what the storage server did is 502. Storage errors never contain
// secrets, so their text is shown (without the "storage: " prefixes).
func vodError(err error) error {
	if err == nil {
		return nil
	}
	var ae *apiError
	var mismatch *storage.HostKeyMismatchError
	var tooBig *http.MaxBytesError
	msg := strings.ReplaceAll(err.Error(), "storage: ", "")
	switch {
	case errors.As(err, &ae), errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", tooBig.Limit)
	case errors.As(err, &mismatch):
		return errorf(http.StatusBadGateway, "SFTP host key mismatch: the pinned key is %s but the server presented %s; "+
			`if the server's key really changed, check it and save the storage with "host_key" set to the new key (or "" to pin the next key seen)`,
			mismatch.Expected, mismatch.Presented)
	case errors.Is(err, storage.ErrAuth):
		return errorf(http.StatusBadGateway, "SFTP authentication failed: the server refused the username with the configured password or key")
	case errors.Is(err, storage.ErrConfig):
		return errorf(http.StatusBadRequest, "invalid VOD storage configuration: %s", msg)
	case errors.Is(err, storage.ErrBadPath):
		return errorf(http.StatusBadRequest, "invalid path: %s", msg)
	case errors.Is(err, storage.ErrNotDir), errors.Is(err, storage.ErrIsDir):
		return errorf(http.StatusBadRequest, "%s", msg)
	case errors.Is(err, storage.ErrNotEmpty), errors.Is(err, fs.ErrExist):
		return errorf(http.StatusConflict, "%s", msg)
	case errors.Is(err, fs.ErrNotExist):
		return errorf(http.StatusNotFound, "not found: %s", msg)
	case errors.Is(err, fs.ErrPermission):
		return errorf(http.StatusForbidden, "the SFTP server denied access: %s", msg)
	case errors.Is(err, storage.ErrRemotePath):
		return errorf(http.StatusBadGateway, "%s", msg)
	default:
		return errorf(http.StatusBadGateway, "VOD storage error: %s", msg)
	}
}

// cleanVODName validates a VOD file name of the /api/vods endpoints: a path relative to
// remote_path (storage.Clean) ending in .mkv.
func cleanVODName(name string) (string, error) {
	rel, err := storage.Clean(name)
	if err != nil {
		return "", vodError(err)
	}
	if !strings.EqualFold(path.Ext(rel), ".mkv") {
		return "", errorf(http.StatusBadRequest, "only .mkv files: %q", name)
	}
	return rel, nil
}

// statFile returns the entry of the regular file rel (symlinks inside remote_path are
// followed; one leading out is a 400).
func statFile(c *storage.Client, rel string) (storage.Entry, error) {
	e, err := c.Stat(rel)
	if err != nil {
		return storage.Entry{}, vodError(err)
	}
	if !e.Mode.IsRegular() {
		return storage.Entry{}, errorf(http.StatusBadRequest, "not a regular file: %q", rel)
	}
	return e, nil
}

// vodFileJSON is a recording on the wire: name is its path relative to remote_path
// (StreamName/YYYY-MM-DD_HH-MM-SS/chunk_NNN.mkv), modified a Unix time in seconds.
type vodFileJSON struct {
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	Modified int64  `json:"modified"`
}

// vodOrder returns the order of recordings by name, size or modified (ties by name),
// asc or desc.
func vodOrder(by, order string) (func(a, b vodFileJSON) int, error) {
	var key func(a, b vodFileJSON) int
	switch by {
	case "", "modified", "date":
		key = func(a, b vodFileJSON) int { return cmp.Compare(a.Modified, b.Modified) }
	case "name":
		key = func(a, b vodFileJSON) int { return 0 }
	case "size":
		key = func(a, b vodFileJSON) int { return cmp.Compare(a.Size, b.Size) }
	default:
		return nil, errorf(http.StatusBadRequest, "sort must be name, size or modified")
	}
	sign := -1
	switch order {
	case "", "desc":
	case "asc":
		sign = 1
	default:
		return nil, errorf(http.StatusBadRequest, "order must be asc or desc")
	}
	return func(a, b vodFileJSON) int { return sign * cmp.Or(key(a, b), strings.Compare(a.Name, b.Name)) }, nil
}

// listVODs returns the .mkv files below userID's remote_path, sorted, and the remote_path
// as resolved on the server. A remote_path that does not exist yet holds no files.
func (s *Server) listVODs(ctx context.Context, userID int64, by, order string) ([]vodFileJSON, string, error) {
	less, err := vodOrder(by, order)
	if err != nil {
		return nil, "", err
	}
	out := []vodFileJSON{}
	var root string
	err = s.withVOD(ctx, userID, func(c *storage.Client) error {
		root = c.Root()
		files, err := c.ListFiles(ctx, ".", ".mkv")
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		for _, f := range files {
			out = append(out, vodFileJSON{Name: f.Path, Size: f.Size, Modified: f.ModTime.Unix()})
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(out, less)
	return out, root, nil
}

// handleListVODs answers GET /api/vods?sort=name|size|modified&order=asc|desc.
func (s *Server) handleListVODs(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	files, root, err := s.listVODs(r.Context(), p.User.ID, q.Get("sort"), q.Get("order"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"files": files, "path": root})
	return nil
}

// handleDownloadVOD answers GET /api/vods/download/{filename}.
func (s *Server) handleDownloadVOD(w http.ResponseWriter, r *http.Request, p *principal) error {
	rel, err := cleanVODName(mux.Vars(r)["filename"])
	if err != nil {
		return err
	}
	return s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		return s.serveRemoteFile(w, r, c, rel, mkvType)
	}, rel)
}

// handleDeleteVOD answers DELETE /api/vods/{filename}: a regular .mkv file only (a
// symlink is checked where it leads: out of remote_path it is a 400 and stays).
func (s *Server) handleDeleteVOD(w http.ResponseWriter, r *http.Request, p *principal) error {
	rel, err := cleanVODName(mux.Vars(r)["filename"])
	if err != nil {
		return err
	}
	err = s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		if _, err := statFile(c, rel); err != nil {
			return err
		}
		return c.Remove(rel, false)
	}, rel)
	if err != nil {
		return err
	}
	s.log.Info("vod file deleted", "user_id", p.User.ID, "name", rel)
	writeJSON(w, http.StatusOK, map[string]string{"message": "file deleted", "name": rel})
	return nil
}

// handleVODArchive answers POST /api/vods/download-archive {"files": [...]}: a zip (stored,
// not compressed: MKV does not compress) streamed as it is read from the storage. Every
// name is checked and every file found before the first byte is sent; a failure after
// that aborts the response, so that the client sees a broken transfer, never a short zip
// that looks complete.
func (s *Server) handleVODArchive(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in struct {
		Files []string `json:"files"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	names, err := archiveNames(in.Files)
	if err != nil {
		return err
	}
	return s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		entries := make([]storage.Entry, len(names))
		for i, n := range names {
			if entries[i], err = statFile(c, n); err != nil {
				return explain(c, err, n)
			}
		}
		s.writeArchive(w, r, p, c, entries)
		return nil
	})
}

// writeArchive streams the zip of entries.
func (s *Server) writeArchive(w http.ResponseWriter, r *http.Request, p *principal, c *storage.Client, entries []storage.Entry) {
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", attachment("vods-"+s.now().UTC().Format("2006-01-02_15-04-05")+".zip"))
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	zw := zip.NewWriter(w)
	for _, e := range entries {
		if err := copyToZip(zw, c, e); err != nil {
			s.abortResponse(r, p, "vod archive", err)
		}
	}
	if err := zw.Close(); err != nil {
		s.abortResponse(r, p, "vod archive", err)
	}
}

// archiveNames validates the names of an archive request: 1 to maxArchiveFiles .mkv paths,
// duplicates (after cleaning) dropped.
func archiveNames(files []string) ([]string, error) {
	if len(files) == 0 {
		return nil, errorf(http.StatusBadRequest, "files is required: a list of .mkv paths")
	}
	if len(files) > maxArchiveFiles {
		return nil, errorf(http.StatusBadRequest, "at most %d files per archive", maxArchiveFiles)
	}
	out := make([]string, 0, len(files))
	for _, f := range files {
		rel, err := cleanVODName(f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, rel) {
			out = append(out, rel)
		}
	}
	return out, nil
}

func copyToZip(zw *zip.Writer, c *storage.Client, e storage.Entry) error {
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: e.Path, Method: zip.Store, Modified: e.ModTime})
	if err != nil {
		return err
	}
	rc, err := c.Open(e.Path, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(fw, rc)
	return err
}

// abortResponse ends a response whose headers are sent: the connection is cut, so that the
// client sees an incomplete transfer (net/http's sanctioned way, http.ErrAbortHandler).
func (s *Server) abortResponse(r *http.Request, p *principal, what string, err error) {
	if r.Context().Err() == nil {
		s.log.Warn(what+" aborted", "user_id", p.User.ID, "err", err)
	}
	panic(http.ErrAbortHandler)
}

// serveRemoteFile sends the regular file rel as an attachment of type ctype, with a single
// byte range when the request asks for one (206, or 416 when it cannot be satisfied).
func (s *Server) serveRemoteFile(w http.ResponseWriter, r *http.Request, c *storage.Client, rel, ctype string) error {
	e, err := statFile(c, rel)
	if err != nil {
		return err
	}
	lastMod := e.ModTime.UTC().Truncate(time.Second)
	rng, partial, err := parseRange(r.Header.Get("Range"), e.Size)
	if ir := r.Header.Get("If-Range"); ir != "" {
		// Only a date equal to Last-Modified keeps the range (there is no ETag).
		if t, perr := http.ParseTime(ir); perr != nil || !t.Equal(lastMod) {
			rng, partial, err = byteRange{length: e.Size}, false, nil
		}
	}
	h := w.Header()
	if err != nil {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(e.Size, 10))
		return errorf(http.StatusRequestedRangeNotSatisfiable, "range not satisfiable: the file has %d bytes", e.Size)
	}
	if !partial {
		rng = byteRange{length: e.Size}
	}
	rc, err := c.Open(rel, rng.start, rng.length)
	if err != nil {
		return err
	}
	defer rc.Close()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.FormatInt(rng.length, 10))
	h.Set("Accept-Ranges", "bytes")
	h.Set("Last-Modified", lastMod.Format(http.TimeFormat))
	h.Set("Content-Disposition", attachment(path.Base(e.Path)))
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", rng.contentRange(e.Size))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(w, rc); err != nil && r.Context().Err() == nil {
		// The body is shorter than its Content-Length: net/http closes the connection.
		s.log.Debug("vod download interrupted", "name", rel, "err", err)
	}
	return nil
}

// attachment is the Content-Disposition of a download named name (RFC 2231-encoded when
// not plain ASCII).
func attachment(name string) string {
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}
