package control

// The file browser of a user's VOD storage: /api/sftp/vod/list|read|download|mkdir|
// upload|write|rename|delete. Every path is relative to remote_path; see doc.go,
// "VOD storage".

import (
	"cmp"
	"errors"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/relaycast/relaycast/vod/storage"
)

// File browser limits.
const (
	// maxSFTPText is the largest file read or written as text (read, write).
	maxSFTPText = 5 << 20
	// maxSFTPWriteBody bounds the JSON body of write: the content with JSON escapes.
	maxSFTPWriteBody = 6*maxSFTPText + 64<<10
	// maxSFTPUpload bounds the multipart body of upload, which is streamed, not buffered.
	maxSFTPUpload = 8 << 30
	// maxFormField bounds the non-file fields of an upload.
	maxFormField = 4096
)

// sftpPath maps a path of the file browser to one relative to remote_path: "", "/" and
// "." are remote_path itself; anything else goes through storage.Clean, so that absolute
// paths and ".." segments are a 400. required: "" is a 400 rather than the root.
func sftpPath(p, field string, required bool) (string, error) {
	switch {
	case p == "" && required:
		return "", errorf(http.StatusBadRequest, "%s is required", field)
	case p == "" || p == "/":
		return ".", nil
	}
	rel, err := storage.Clean(p)
	if err != nil {
		return "", vodError(err)
	}
	return rel, nil
}

// sftpDisplay is how a relative path is shown: the root as "/".
func sftpDisplay(rel string) string {
	if rel == "." {
		return "/"
	}
	return rel
}

// sftpEntryJSON is a directory entry on the wire. path is what to pass to the other
// endpoints; modified is a Unix time in seconds; mode is ls-style ("drwxr-xr-x").
type sftpEntryJSON struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	IsDir     bool   `json:"is_dir"`
	IsSymlink bool   `json:"is_symlink"`
	Size      int64  `json:"size"`
	Modified  int64  `json:"modified"`
	Mode      string `json:"mode"`
}

// handleSFTPList answers GET /api/sftp/vod/list?path=: directories first, then files, by
// name. The root of a storage whose remote_path does not exist yet is empty.
func (s *Server) handleSFTPList(w http.ResponseWriter, r *http.Request, p *principal) error {
	rel, err := sftpPath(r.URL.Query().Get("path"), "path", false)
	if err != nil {
		return err
	}
	out := []sftpEntryJSON{}
	err = s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		list, err := c.List(r.Context(), rel)
		if rel == "." && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		for _, e := range list {
			out = append(out, sftpEntryJSON{Name: e.Name, Path: e.Path, IsDir: e.IsDir(), IsSymlink: e.Mode&fs.ModeSymlink != 0,
				Size: e.Size, Modified: e.ModTime.Unix(), Mode: e.Mode.String()})
		}
		return err
	}, rel)
	if err != nil {
		return err
	}
	slices.SortStableFunc(out, func(a, b sftpEntryJSON) int {
		if a.IsDir != b.IsDir {
			if a.IsDir {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	writeJSON(w, http.StatusOK, map[string]any{"path": sftpDisplay(rel), "files": out})
	return nil
}

// handleSFTPRead answers GET /api/sftp/vod/read?path=: a UTF-8 text file of at most
// maxSFTPText bytes, {"path", "content", "size"}.
func (s *Server) handleSFTPRead(w http.ResponseWriter, r *http.Request, p *principal) error {
	rel, err := sftpPath(r.URL.Query().Get("path"), "path", true)
	if err != nil {
		return err
	}
	var content []byte
	err = s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		e, err := statFile(c, rel)
		if err != nil {
			return err
		}
		if e.Size > maxSFTPText {
			return errorf(http.StatusBadRequest, "the file has %d bytes; read returns at most %d: use download", e.Size, maxSFTPText)
		}
		rc, err := c.Open(rel, 0, maxSFTPText+1)
		if err != nil {
			return err
		}
		defer rc.Close()
		content, err = io.ReadAll(rc)
		return err
	}, rel)
	switch {
	case err != nil:
		return err
	case len(content) > maxSFTPText:
		return errorf(http.StatusBadRequest, "the file has more than %d bytes: use download", maxSFTPText)
	case !utf8.Valid(content):
		return errorf(http.StatusBadRequest, "not a UTF-8 text file: use download")
	}
	writeJSON(w, http.StatusOK, map[string]any{"path": rel, "content": string(content), "size": len(content)})
	return nil
}

// handleSFTPDownload answers GET /api/sftp/vod/download?path=: any regular file, as an
// attachment, with Range.
func (s *Server) handleSFTPDownload(w http.ResponseWriter, r *http.Request, p *principal) error {
	rel, err := sftpPath(r.URL.Query().Get("path"), "path", true)
	if err != nil {
		return err
	}
	ctype := "application/octet-stream"
	if strings.EqualFold(path.Ext(rel), ".mkv") {
		ctype = mkvType
	}
	return s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		return s.serveRemoteFile(w, r, c, rel, ctype)
	}, rel)
}

// handleSFTPMkdir answers POST /api/sftp/vod/mkdir {"path"}: missing parents are created,
// an existing directory is not an error.
func (s *Server) handleSFTPMkdir(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in struct {
		Path string `json:"path"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	rel, err := sftpPath(in.Path, "path", true)
	if err != nil {
		return err
	}
	if err := s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error { return c.Mkdir(rel) }, rel); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "directory created", "path": sftpDisplay(rel)})
	return nil
}

// handleSFTPWrite answers POST /api/sftp/vod/write {"path", "content"}: the file is
// replaced atomically (written to path.part, then renamed); parents are created.
func (s *Server) handleSFTPWrite(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in struct {
		Path    string  `json:"path"`
		Content *string `json:"content"`
	}
	if err := decodeJSONLimit(w, r, &in, maxSFTPWriteBody); err != nil {
		return err
	}
	rel, err := sftpPath(in.Path, "path", true)
	switch {
	case err != nil:
		return err
	case in.Content == nil:
		return errorf(http.StatusBadRequest, "content is required")
	case len(*in.Content) > maxSFTPText:
		return errorf(http.StatusRequestEntityTooLarge, "content must be at most %d bytes", maxSFTPText)
	}
	var n int64
	err = s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		n, err = c.WriteFile(r.Context(), rel, strings.NewReader(*in.Content))
		return err
	}, rel)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "file written", "path": rel, "size": n})
	return nil
}

// handleSFTPRename answers POST /api/sftp/vod/rename {"old_path", "new_path"}: new_path
// must not exist and its parent must.
func (s *Server) handleSFTPRename(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in struct {
		OldPath string `json:"old_path"`
		NewPath string `json:"new_path"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	from, err := sftpPath(in.OldPath, "old_path", true)
	if err != nil {
		return err
	}
	to, err := sftpPath(in.NewPath, "new_path", true)
	if err != nil {
		return err
	}
	err = s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		if err := checkInside(c, from, to); err != nil {
			return err
		}
		return c.Rename(from, to)
	}, from, to)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "renamed", "old_path": from, "new_path": to})
	return nil
}

// handleSFTPDelete answers DELETE /api/sftp/vod/delete?path=: a file, a symlink or an
// empty directory (409 when not empty).
func (s *Server) handleSFTPDelete(w http.ResponseWriter, r *http.Request, p *principal) error {
	rel, err := sftpPath(r.URL.Query().Get("path"), "path", true)
	if err != nil {
		return err
	}
	err = s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		if err := checkInside(c, rel); err != nil {
			return err
		}
		return c.Remove(rel, false)
	}, rel)
	if err != nil {
		return err
	}
	s.log.Info("vod storage path deleted", "user_id", p.User.ID, "path", rel)
	writeJSON(w, http.StatusOK, map[string]string{"message": "deleted", "path": rel})
	return nil
}

// checkInside refuses (400) paths that are symlinks leading out of remote_path. Rename and
// Remove act on a symlink itself, which is harmless, but the API treats such a link like
// every other way out: refused, and left as it is. A dangling link inside is allowed.
func checkInside(c *storage.Client, rels ...string) error {
	for _, rel := range rels {
		if _, err := c.Stat(rel); errors.Is(err, storage.ErrBadPath) {
			return err
		}
	}
	return nil
}

// handleSFTPUpload answers POST /api/sftp/vod/upload, multipart/form-data with "path" (the
// destination directory) and "file". The file is streamed to the storage as it arrives
// (atomically: name.part, then renamed over an existing file of the same name), so "path"
// must come before "file" in the form, or be given as ?path=. Parts after the file are not
// read.
func (s *Server) handleSFTPUpload(w http.ResponseWriter, r *http.Request, p *principal) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxSFTPUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		return errorf(http.StatusBadRequest, "the body must be multipart/form-data with the fields path and file")
	}
	dir, haveDir := r.URL.Query().Get("path"), r.URL.Query().Has("path")
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "file is required")
		}
		if err != nil {
			return uploadError(err)
		}
		switch part.FormName() {
		case "path":
			b, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
			if err != nil {
				return uploadError(err)
			}
			if len(b) > maxFormField {
				return errorf(http.StatusBadRequest, "path is longer than %d bytes", maxFormField)
			}
			dir, haveDir = string(b), true
		case "file":
			if !haveDir {
				return errorf(http.StatusBadRequest, "path is required and must come before file in the form (or pass ?path=)")
			}
			return s.uploadPart(w, r, p, dir, part)
		}
	}
}

// uploadPart streams one file part into the directory dir.
func (s *Server) uploadPart(w http.ResponseWriter, r *http.Request, p *principal, dir string, part *multipart.Part) error {
	dirRel, err := sftpPath(dir, "path", false)
	if err != nil {
		return err
	}
	name := part.FileName()
	name = name[strings.LastIndexAny(name, `/\`)+1:] // some browsers send a client-side path
	if name == "" || name == "." || name == ".." {
		return errorf(http.StatusBadRequest, "the file part needs a file name")
	}
	rel, err := storage.Clean(path.Join(dirRel, name))
	if err != nil {
		return vodError(err)
	}
	var n int64
	err = s.withVOD(r.Context(), p.User.ID, func(c *storage.Client) error {
		n, err = c.WriteFile(r.Context(), rel, part)
		return err
	}, rel)
	if err != nil {
		return err
	}
	s.log.Info("vod storage upload", "user_id", p.User.ID, "path", rel, "bytes", n)
	writeJSON(w, http.StatusOK, map[string]any{"message": "file uploaded", "path": rel, "size": n})
	return nil
}

// uploadError maps an error reading the multipart body.
func uploadError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(http.StatusRequestEntityTooLarge, "upload larger than %d bytes", tooBig.Limit)
	}
	return errorf(http.StatusBadRequest, "malformed multipart body")
}
