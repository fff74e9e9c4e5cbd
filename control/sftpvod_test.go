package control

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upload posts a multipart form: the fields in order ("file" carries content under name).
func (v *vodEnv) upload(query string, fields [][2]string, name string, content []byte) (int, []byte) {
	v.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if f[0] == "file" {
			fw, _ := mw.CreateFormFile("file", name)
			fw.Write(content)
			continue
		}
		mw.WriteField(f[0], f[1])
	}
	mw.Close()
	req, _ := http.NewRequest("POST", v.http.URL+"/api/sftp/vod/upload"+query, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+v.token)
	resp, err := v.http.Client().Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func (v *vodEnv) file(rel string) []byte {
	v.t.Helper()
	b, err := os.ReadFile(filepath.Join(v.sftp.Root(), filepath.FromSlash(rel)))
	if err != nil {
		v.t.Fatal(err)
	}
	return b
}

// TestSFTPVODBrowser: list, mkdir, write, read, rename, upload, download, delete.
func TestSFTPVODBrowser(t *testing.T) {
	eachVODServer(t, func(t *testing.T, v *vodEnv) {
		t0 := time.Date(2026, 2, 8, 4, 24, 49, 0, time.UTC)
		mkv := v.put(vodA, 100_000, t0)
		v.put("b.txt", 3, t0)
		type listing struct {
			Path  string          `json:"path"`
			Files []sftpEntryJSON `json:"files"`
		}
		var l listing
		v.call(200, "GET", "/api/sftp/vod/list", v.token, nil, &l)
		if l.Path != "/" || len(l.Files) != 2 || l.Files[0].Name != "S" || !l.Files[0].IsDir || l.Files[0].Path != "S" ||
			l.Files[1] != (sftpEntryJSON{Name: "b.txt", Path: "b.txt", Size: 3, Modified: t0.Unix(), Mode: "-rw-r--r--"}) {
			t.Fatalf("root: %+v", l)
		}
		v.call(200, "GET", "/api/sftp/vod/list?path=/", v.token, nil, &l)
		v.call(200, "GET", "/api/sftp/vod/list?path=S/2026-02-08_04-24-49", v.token, nil, &l)
		if l.Path != "S/2026-02-08_04-24-49" || len(l.Files) != 1 || l.Files[0].Path != vodA || l.Files[0].Size != 100_000 {
			t.Fatalf("session dir: %+v", l)
		}
		v.wantError(404, "GET", "/api/sftp/vod/list?path=nope", v.token, nil)
		v.wantError(400, "GET", "/api/sftp/vod/list?path=b.txt", v.token, nil)

		v.call(200, "POST", "/api/sftp/vod/mkdir", v.token, map[string]any{"path": "a/b"}, nil)
		v.call(200, "POST", "/api/sftp/vod/mkdir", v.token, map[string]any{"path": "a/b"}, nil)
		v.wantError(400, "POST", "/api/sftp/vod/mkdir", v.token, map[string]any{"path": ""})
		v.call(200, "POST", "/api/sftp/vod/write", v.token, map[string]any{"path": "a/b/hello.txt", "content": "héllo\n"}, nil)
		var rd struct {
			Path    string `json:"path"`
			Content string `json:"content"`
			Size    int    `json:"size"`
		}
		v.call(200, "GET", "/api/sftp/vod/read?path="+url.QueryEscape("a/b/hello.txt"), v.token, nil, &rd)
		if rd.Content != "héllo\n" || rd.Size != 7 || rd.Path != "a/b/hello.txt" {
			t.Fatalf("read %+v", rd)
		}
		v.wantError(400, "POST", "/api/sftp/vod/write", v.token, map[string]any{"path": "a/x.txt"})
		v.wantError(413, "POST", "/api/sftp/vod/write", v.token, map[string]any{"path": "a/x.txt", "content": strings.Repeat("x", maxSFTPText+1)})
		v.wantError(400, "GET", "/api/sftp/vod/read?path="+vodA, v.token, nil) // not UTF-8
		v.wantError(400, "GET", "/api/sftp/vod/read?path=a", v.token, nil)     // a directory
		v.wantError(400, "GET", "/api/sftp/vod/read", v.token, nil)

		v.call(200, "POST", "/api/sftp/vod/rename", v.token, map[string]any{"old_path": "a/b/hello.txt", "new_path": "a/hi.txt"}, nil)
		if string(v.file("a/hi.txt")) != "héllo\n" {
			t.Fatal("rename")
		}
		v.wantError(409, "POST", "/api/sftp/vod/rename", v.token, map[string]any{"old_path": "b.txt", "new_path": "a/hi.txt"})
		v.wantError(404, "POST", "/api/sftp/vod/rename", v.token, map[string]any{"old_path": "none", "new_path": "x"})

		payload := bytes.Repeat([]byte("0123456789"), 50_000)
		if code, raw := v.upload("", [][2]string{{"path", "up"}, {"file", ""}}, "clip.bin", payload); code != 200 {
			t.Fatalf("upload: %d %s", code, raw)
		}
		if !bytes.Equal(v.file("up/clip.bin"), payload) {
			t.Fatal("uploaded bytes differ")
		}
		if code, raw := v.upload("?path=/", [][2]string{{"file", ""}}, `C:\Users\me\root.txt`, []byte("r")); code != 200 || string(v.file("root.txt")) != "r" {
			t.Fatalf("upload with ?path=: %d %s", code, raw)
		}
		if code, raw := v.upload("", [][2]string{{"file", ""}, {"path", "up"}}, "late.txt", []byte("x")); code != 400 || !strings.Contains(string(raw), "before file") {
			t.Fatalf("file before path: %d %s", code, raw)
		}
		if code, _ := v.upload("", [][2]string{{"path", "up"}}, "", nil); code != 400 {
			t.Fatalf("no file: %d", code)
		}

		resp, body := v.get("/api/sftp/vod/download?path=" + url.QueryEscape(vodA))
		if resp.StatusCode != 200 || !bytes.Equal(body, mkv) || resp.Header.Get("Content-Type") != "video/x-matroska" {
			t.Fatalf("download: %d", resp.StatusCode)
		}
		resp, body = v.get("/api/sftp/vod/download?path=up/clip.bin", "Range", "bytes=10-19")
		if resp.StatusCode != 206 || !bytes.Equal(body, payload[10:20]) || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("download range: %d %q", resp.StatusCode, body)
		}

		v.wantError(409, "DELETE", "/api/sftp/vod/delete?path=a", v.token, nil)
		v.call(200, "DELETE", "/api/sftp/vod/delete?path=a/hi.txt", v.token, nil, nil)
		v.call(200, "DELETE", "/api/sftp/vod/delete?path=a/b", v.token, nil, nil)
		v.call(200, "DELETE", "/api/sftp/vod/delete?path=a", v.token, nil, nil)
		v.wantError(404, "DELETE", "/api/sftp/vod/delete?path=a", v.token, nil)
		v.wantError(400, "DELETE", "/api/sftp/vod/delete?path=/", v.token, nil)
		if _, err := os.Stat(filepath.Join(v.sftp.Root(), "a")); !os.IsNotExist(err) {
			t.Fatalf("a still there: %v", err)
		}
	})
}

// snapshot describes every file, directory and symlink below dirs: type, link target and
// content hash, so that a change anywhere shows.
func snapshot(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				out[p] = "link " + target
			case fi.IsDir():
				out[p] = "dir"
			default:
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				out[p] = fmt.Sprintf("file %x %v", sha256.Sum256(b), fi.ModTime())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestVODPathTraversal: on every file endpoint, "..", absolute paths and symlinks leading
// out of remote_path get 400 with the error shape, and nothing inside or outside the
// root changes.
func TestVODPathTraversal(t *testing.T) {
	eachVODServer(t, func(t *testing.T, v *vodEnv) {
		root := v.sftp.Root()
		outside := filepath.Join(filepath.Dir(root), "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"secret.mkv", "secret.txt"} {
			if err := os.WriteFile(filepath.Join(outside, name), []byte("secret "+name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		v.put(vodA, 100, time.Now())
		for link, target := range map[string]string{"evil": outside, "evil.mkv": filepath.Join(outside, "secret.mkv"),
			"evil.txt": filepath.Join(outside, "secret.txt"), "rel.mkv": "../outside/secret.mkv"} {
			if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
				t.Fatal(err)
			}
		}
		passwd, _ := os.ReadFile("/etc/passwd")
		before := snapshot(t, root, outside)
		mkvPaths := []string{"../outside/secret.mkv", "/etc/passwd", outside + "/secret.mkv", "a/../../outside/secret.mkv",
			"S/../../outside/secret.mkv", "evil.mkv", "rel.mkv", "evil/secret.mkv", "S/..", "..", `S\..\..\x.mkv`, "x\x00.mkv"}
		paths := append([]string{"evil.txt", "evil/secret.txt", "evil", "evil/new", "/", "../outside"}, mkvPaths...)

		want400 := func(method, target string, body any) {
			t.Helper()
			code, raw, hdr := v.do(method, target, v.token, body)
			if code != 400 || hdr.Get("Content-Type") != "application/json; charset=utf-8" || !strings.Contains(string(raw), `"status":400`) {
				t.Errorf("%s %q: %d %s", method, target, code, raw)
			}
		}
		for _, p := range mkvPaths {
			// The URL path carries the name raw and percent-encoded.
			for _, enc := range []string{strings.ReplaceAll(p, "\x00", "%00"), url.PathEscape(p)} {
				want400("GET", "/api/vods/download/"+enc, nil)
				want400("DELETE", "/api/vods/"+enc, nil)
			}
			want400("POST", "/api/vods/download-archive", map[string]any{"files": []string{vodA, p}})
		}
		for _, p := range paths {
			if p == "/" {
				continue // the root itself: listing it is fine, see below
			}
			q := url.QueryEscape(p)
			want400("GET", "/api/sftp/vod/list?path="+q, nil)
			want400("GET", "/api/sftp/vod/read?path="+q, nil)
			want400("GET", "/api/sftp/vod/download?path="+q, nil)
			want400("DELETE", "/api/sftp/vod/delete?path="+q, nil)
			want400("POST", "/api/sftp/vod/mkdir", map[string]any{"path": p})
			want400("POST", "/api/sftp/vod/mkdir", map[string]any{"path": p + "/sub"})
			want400("POST", "/api/sftp/vod/write", map[string]any{"path": p, "content": "pwned"})
			want400("POST", "/api/sftp/vod/write", map[string]any{"path": p + "/x.txt", "content": "pwned"})
			want400("POST", "/api/sftp/vod/rename", map[string]any{"old_path": p, "new_path": "moved"})
			want400("POST", "/api/sftp/vod/rename", map[string]any{"old_path": vodA, "new_path": p})
			want400("POST", "/api/sftp/vod/rename", map[string]any{"old_path": vodA, "new_path": p + "/moved.mkv"})
			if code, raw := v.upload("", [][2]string{{"path", p}, {"file", ""}}, "x.mkv", []byte("pwned")); code != 400 {
				t.Errorf("upload into %q: %d %s", p, code, raw)
			}
		}
		for _, name := range []string{"../x.mkv", "..", "."} {
			if code, raw := v.upload("", [][2]string{{"path", "evil"}, {"file", ""}}, name, []byte("pwned")); code != 400 {
				t.Errorf("upload of %q into evil: %d %s", name, code, raw)
			}
		}
		// The root itself: listed, but not deleted, renamed, read or written.
		v.call(200, "GET", "/api/sftp/vod/list?path=/", v.token, nil, nil)
		want400("DELETE", "/api/sftp/vod/delete?path=/", nil)
		want400("POST", "/api/sftp/vod/rename", map[string]any{"old_path": "/", "new_path": "x"})
		want400("GET", "/api/sftp/vod/read?path=/", nil)
		want400("POST", "/api/sftp/vod/write", map[string]any{"path": "/", "content": "x"})

		if after := snapshot(t, root, outside); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("files changed:\nbefore %v\nafter  %v", before, after)
		}
		if now, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(now, passwd) {
			t.Fatal("/etc/passwd changed")
		}
		// The listing of VODs does not follow the links out either.
		if got := v.names(""); got != vodA {
			t.Fatalf("listing follows links out: %q", got)
		}
	})
}

// TestVODMissingRemotePath: a remote_path that does not exist yet (nothing recorded) lists
// empty, and the first upload creates it.
func TestVODMissingRemotePath(t *testing.T) {
	v := newVODEnv(t, true)
	missing := filepath.Join(v.sftp.Root(), "vods", "later")
	v.call(200, "POST", "/api/vods/storage", v.token, map[string]any{"remote_path": missing}, nil)
	var out vodListAnswer
	v.call(200, "GET", "/api/vods", v.token, nil, &out)
	if len(out.Files) != 0 || out.Path != missing {
		t.Fatalf("list %+v", out)
	}
	raw := v.call(200, "GET", "/api/sftp/vod/list", v.token, nil, nil)
	if string(raw) != `{"files":[],"path":"/"}`+"\n" {
		t.Fatalf("browser list %s", raw)
	}
	v.wantError(404, "GET", "/api/sftp/vod/list?path=x", v.token, nil)
	if code, raw := v.upload("", [][2]string{{"path", "S/2026-02-08_04-24-49"}, {"file", ""}}, "chunk_000.mkv", []byte("mkv")); code != 200 {
		t.Fatalf("upload %d %s", code, raw)
	}
	if b, err := os.ReadFile(filepath.Join(missing, "S", "2026-02-08_04-24-49", "chunk_000.mkv")); err != nil || string(b) != "mkv" {
		t.Fatalf("uploaded: %q %v", b, err)
	}
	v.call(200, "GET", "/api/vods", v.token, nil, &out)
	if len(out.Files) != 1 || out.Files[0].Name != "S/2026-02-08_04-24-49/chunk_000.mkv" {
		t.Fatalf("after upload: %+v", out)
	}
}
