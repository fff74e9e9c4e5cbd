package control

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// vodEnv is a control plane whose first user has VOD storage on a real SFTP server.
type vodEnv struct {
	*env
	token string
	sftp  *sftptest.Server
}

// newVODEnv starts an SFTP server (sshd with key auth, or the in-process one with password
// auth) and configures it as the admin's storage, its root as remote_path.
func newVODEnv(t *testing.T, inProcess bool) *vodEnv {
	t.Helper()
	e := newEnv(t)
	admin := e.setup()
	srv := sftptest.Start(t, sftptest.Options{InProcess: inProcess})
	e.call(200, "POST", "/api/vods/storage", admin, storageBody(srv, inProcess), nil)
	return &vodEnv{env: e, token: admin, sftp: srv}
}

// eachVODServer runs fn against sshd (key auth) and the in-process server (password
// auth), as parallel subtests.
func eachVODServer(t *testing.T, fn func(t *testing.T, v *vodEnv)) {
	for _, inProcess := range []bool{false, true} {
		name := map[bool]string{false: "openssh", true: "inprocess"}[inProcess]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newVODEnv(t, inProcess))
		})
	}
}

// put writes a file below the server's root with the given size (random bytes) and mtime.
func (v *vodEnv) put(rel string, size int, mtime time.Time) []byte {
	v.t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	p := filepath.Join(v.sftp.Root(), filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		v.t.Fatal(err)
	}
	return data
}

// get sends a GET with extra headers and returns the response with its body read.
func (v *vodEnv) get(path string, hdr ...string) (*http.Response, []byte) {
	v.t.Helper()
	req, err := http.NewRequest("GET", v.http.URL+path, nil)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+v.token)
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := v.http.Client().Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		v.t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp, body
}

type vodListAnswer struct {
	Files []vodFileJSON `json:"files"`
	Path  string        `json:"path"`
}

func (v *vodEnv) names(query string) string {
	v.t.Helper()
	var out vodListAnswer
	v.call(200, "GET", "/api/vods"+query, v.token, nil, &out)
	if out.Path != v.sftp.Root() {
		v.t.Fatalf("path %q, want %q", out.Path, v.sftp.Root())
	}
	names := make([]string, len(out.Files))
	for i, f := range out.Files {
		names[i] = f.Name
	}
	return strings.Join(names, " ")
}

const (
	vodA = "S/2026-02-08_04-24-49/chunk_000.mkv"
	vodB = "S/2026-02-08_04-24-49/chunk_001.mkv"
	vodC = "T/2026-01-01_00-00-00/chunk_000.mkv"
)

// TestVODList: recursive listing of .mkv files only, with sort and order.
func TestVODList(t *testing.T) {
	eachVODServer(t, func(t *testing.T, v *vodEnv) {
		if got := v.names(""); got != "" {
			t.Fatalf("empty storage lists %q", got)
		}
		t0 := time.Date(2026, 2, 8, 4, 24, 49, 0, time.UTC)
		v.put(vodA, 3000, t0)
		v.put(vodB, 1000, t0.Add(5*time.Minute))
		v.put(vodC, 2000, t0.Add(-time.Hour))
		v.put("notes.txt", 10, t0)
		v.put("S/2026-02-08_04-24-49/chunk_002.mkv.part", 10, t0)
		var out vodListAnswer
		v.call(200, "GET", "/api/vods", v.token, nil, &out)
		if len(out.Files) != 3 || out.Files[0] != (vodFileJSON{Name: vodB, Size: 1000, Modified: t0.Add(5 * time.Minute).Unix()}) {
			t.Fatalf("list %+v", out)
		}
		for q, want := range map[string]string{
			"":                       vodB + " " + vodA + " " + vodC,
			"?order=asc":             vodC + " " + vodA + " " + vodB,
			"?sort=modified":         vodB + " " + vodA + " " + vodC,
			"?sort=date&order=asc":   vodC + " " + vodA + " " + vodB,
			"?sort=name&order=asc":   vodA + " " + vodB + " " + vodC,
			"?sort=name":             vodC + " " + vodB + " " + vodA,
			"?sort=size&order=desc":  vodA + " " + vodC + " " + vodB,
			"?sort=size&order=asc":   vodB + " " + vodC + " " + vodA,
			"?sort=name&order=desc":  vodC + " " + vodB + " " + vodA,
			"?sort=modified&order=X": "",
		} {
			if want == "" {
				v.wantError(400, "GET", "/api/vods"+q, v.token, nil)
				continue
			}
			if got := v.names(q); got != want {
				t.Errorf("%s:\n got %s\nwant %s", q, got, want)
			}
		}
		v.wantError(400, "GET", "/api/vods?sort=owner", v.token, nil)
	})
}

// TestVODDownload: whole file, single ranges (206), unsatisfiable (416), several ranges
// (200), If-Range, encoded slashes, .mkv only.
func TestVODDownload(t *testing.T) {
	eachVODServer(t, func(t *testing.T, v *vodEnv) {
		mtime := time.Date(2026, 2, 8, 4, 30, 0, 0, time.UTC)
		data := v.put(vodA, 300_000, mtime)
		v.put("notes.txt", 10, mtime)
		url := "/api/vods/download/" + vodA
		resp, body := v.get(url)
		h := resp.Header
		if resp.StatusCode != 200 || !bytes.Equal(body, data) || h.Get("Content-Type") != "video/x-matroska" ||
			h.Get("Content-Disposition") != `attachment; filename=chunk_000.mkv` || h.Get("Accept-Ranges") != "bytes" ||
			h.Get("Content-Length") != "300000" || h.Get("Last-Modified") != mtime.Format(http.TimeFormat) {
			t.Fatalf("download: %d %d bytes %v", resp.StatusCode, len(body), h)
		}
		for _, tc := range []struct {
			rng        string
			start, end int // inclusive
		}{
			{"bytes=100-199", 100, 199},
			{"bytes=0-0", 0, 0},
			{"bytes=-100", 299_900, 299_999},
			{"bytes=299990-", 299_990, 299_999},
			{"bytes=200000-999999999", 200_000, 299_999},
			{"Bytes = 5-9", 5, 9},
		} {
			resp, body := v.get(url, "Range", tc.rng)
			wantCR := fmt.Sprintf("bytes %d-%d/300000", tc.start, tc.end)
			if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != wantCR || !bytes.Equal(body, data[tc.start:tc.end+1]) {
				t.Fatalf("%s: %d %q %d bytes", tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
			}
		}
		for _, rng := range []string{"bytes=300000-", "bytes=5-1", "bytes=-0", "bytes=x-1", "bytes"} {
			resp, body := v.get(url, "Range", rng)
			if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */300000" || !strings.Contains(string(body), `"status":416`) {
				t.Fatalf("%s: %d %q %s", rng, resp.StatusCode, resp.Header.Get("Content-Range"), body)
			}
		}
		for _, hdr := range [][]string{
			{"Range", "bytes=0-1,5-6"},
			{"Range", "items=0-1"},
			{"Range", "bytes=0-1", "If-Range", mtime.Add(time.Hour).Format(http.TimeFormat)},
			{"Range", "bytes=0-1", "If-Range", `"etag"`},
		} {
			if resp, body := v.get(url, hdr...); resp.StatusCode != 200 || !bytes.Equal(body, data) {
				t.Fatalf("%v: %d, %d bytes", hdr, resp.StatusCode, len(body))
			}
		}
		if resp, body := v.get(url, "Range", "bytes=0-1", "If-Range", mtime.Format(http.TimeFormat)); resp.StatusCode != 206 || len(body) != 2 {
			t.Fatalf("If-Range matching: %d", resp.StatusCode)
		}
		// Slashes may come encoded.
		if resp, body := v.get("/api/vods/download/" + strings.ReplaceAll(vodA, "/", "%2F")); resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("encoded: %d", resp.StatusCode)
		}
		// A symlink inside the root to a file inside is followed.
		if err := os.Symlink("S/2026-02-08_04-24-49/chunk_000.mkv", filepath.Join(v.sftp.Root(), "latest.mkv")); err != nil {
			t.Fatal(err)
		}
		if resp, body := v.get("/api/vods/download/latest.mkv"); resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("symlink inside: %d", resp.StatusCode)
		}
		if msg := v.wantError(400, "GET", "/api/vods/download/notes.txt", v.token, nil); !strings.Contains(msg, ".mkv") {
			t.Fatalf("non-mkv: %q", msg)
		}
		v.wantError(404, "GET", "/api/vods/download/S/none.mkv", v.token, nil)
		if err := os.Mkdir(filepath.Join(v.sftp.Root(), "dir.mkv"), 0o755); err != nil {
			t.Fatal(err)
		}
		v.wantError(400, "GET", "/api/vods/download/dir.mkv", v.token, nil)
	})
}

// TestVODArchive: a streamed zip of the named files, checked by unzipping.
func TestVODArchive(t *testing.T) {
	eachVODServer(t, func(t *testing.T, v *vodEnv) {
		t0 := time.Date(2026, 2, 8, 4, 24, 49, 0, time.UTC)
		want := map[string][]byte{vodA: v.put(vodA, 700_000, t0), vodB: v.put(vodB, 1, t0), vodC: v.put(vodC, 0, t0)}
		v.put("notes.txt", 10, t0)
		code, raw, hdr := v.do("POST", "/api/vods/download-archive", v.token, map[string]any{"files": []string{vodA, vodB, vodC, "./" + vodA}})
		if code != 200 || hdr.Get("Content-Type") != "application/zip" || !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment; filename=vods-") {
			t.Fatalf("archive: %d %v %.200s", code, hdr, raw)
		}
		zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if len(zr.File) != 3 {
			t.Fatalf("%d entries", len(zr.File))
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, want[f.Name]) || f.Method != zip.Store || !f.Modified.Equal(t0) {
				t.Fatalf("%s: %v, %d bytes, method %d, modified %v", f.Name, err, len(got), f.Method, f.Modified)
			}
		}
		many := make([]string, 501)
		for i := range many {
			many[i] = fmt.Sprintf("S/chunk_%03d.mkv", i)
		}
		for _, body := range []any{
			map[string]any{"files": many},
			map[string]any{"files": []string{}},
			map[string]any{},
			map[string]any{"files": []string{vodA, "notes.txt"}},
		} {
			v.wantError(400, "POST", "/api/vods/download-archive", v.token, body)
		}
		// A missing file is a 404 before any byte of the zip.
		v.wantError(404, "POST", "/api/vods/download-archive", v.token, map[string]any{"files": []string{vodA, "S/none.mkv"}})
	})
}

// TestVODDelete: .mkv files only, then gone.
func TestVODDelete(t *testing.T) {
	eachVODServer(t, func(t *testing.T, v *vodEnv) {
		t0 := time.Now()
		v.put(vodA, 10, t0)
		v.put(vodC, 10, t0)
		v.put("notes.txt", 10, t0)
		var out map[string]string
		v.call(200, "DELETE", "/api/vods/"+vodC, v.token, nil, &out)
		if out["name"] != vodC {
			t.Fatalf("delete answer %v", out)
		}
		if _, err := os.Stat(filepath.Join(v.sftp.Root(), vodC)); !os.IsNotExist(err) {
			t.Fatalf("still there: %v", err)
		}
		v.wantError(404, "DELETE", "/api/vods/"+vodC, v.token, nil)
		v.wantError(400, "DELETE", "/api/vods/notes.txt", v.token, nil)
		if _, err := os.Stat(filepath.Join(v.sftp.Root(), "notes.txt")); err != nil {
			t.Fatalf("non-mkv deleted: %v", err)
		}
		if got := v.names(""); got != vodA {
			t.Fatalf("after delete: %q", got)
		}
	})
}

// TestStreamRecordToggle: record defaults to true and follows create and update.
func TestStreamRecordToggle(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	on := e.createStream(admin, map[string]any{"title": "on"})
	off := e.createStream(admin, map[string]any{"title": "off", "record": false})
	if on.Record == nil || !*on.Record || off.Record == nil || *off.Record {
		t.Fatalf("record: %v %v", on.Record, off.Record)
	}
	var up streamJSON
	e.call(200, "PUT", fmt.Sprintf("/api/streams/%d", off.ID), admin, map[string]any{"record": true}, &up)
	if !*up.Record {
		t.Fatal("record not updated")
	}
	st, err := e.store.StreamByID(t.Context(), off.ID)
	if err != nil || !st.Record {
		t.Fatalf("stored %+v %v", st, err)
	}
}

// TestVODConnectionReuse: a user's connection is reused while it answers and its
// configuration is unchanged, replaced after a server restart, dropped on a change, after
// vodIdleTTL and when the server closes.
func TestVODConnectionReuse(t *testing.T) {
	eachVODServer(t, func(t *testing.T, v *vodEnv) {
		uid := userID(t, v.env, v.token)
		idle := func() *vodIdle {
			v.srv.vodConns.mu.Lock()
			defer v.srv.vodConns.mu.Unlock()
			if i, ok := v.srv.vodConns.idle[uid]; ok {
				return &i
			}
			return nil
		}
		v.names("")
		first := idle()
		if first == nil {
			t.Fatal("no idle connection after a request")
		}
		v.names("")
		v.call(200, "GET", "/api/sftp/vod/list", v.token, nil, nil)
		if i := idle(); i == nil || i.c != first.c {
			t.Fatal("connection not reused")
		}
		// The server restarts: the idle connection is dead, the next request dials again.
		v.sftp.Restart()
		v.names("")
		second := idle()
		if second == nil || second.c == first.c {
			t.Fatal("dead connection reused")
		}
		// A change of the configuration drops it.
		v.call(200, "POST", "/api/vods/storage", v.token, map[string]any{"recording_enabled": false}, nil)
		if idle() != nil {
			t.Fatal("connection kept after a configuration change")
		}
		v.names("")
		if i := idle(); i == nil || i.c == second.c {
			t.Fatal("no new connection after the change")
		}
		// Another user never gets it.
		other := v.user(v.token, "other")
		v.wantError(404, "GET", "/api/vods", other, nil)
		v.srv.vodConns.prune(v.clock.Now())
		if idle() == nil {
			t.Fatal("pruned before vodIdleTTL")
		}
		v.clock.Advance(vodIdleTTL)
		v.srv.vodConns.prune(v.clock.Now())
		if idle() != nil {
			t.Fatal("not pruned after vodIdleTTL")
		}
		v.names("")
		v.srv.Close()
		if n := v.srv.vodConns.count(); n != 0 {
			t.Fatalf("%d idle connections after Close", n)
		}
	})
}

// TestVODArchiveAbort: when the storage fails in the middle of an archive, the response is
// cut, so the client sees a broken transfer rather than a complete-looking zip.
func TestVODArchiveAbort(t *testing.T) {
	v := newVODEnv(t, true)
	v.put(vodA, 64<<20, time.Now())
	body := strings.NewReader(`{"files":["` + vodA + `"]}`)
	req, _ := http.NewRequest("POST", v.http.URL+"/api/vods/download-archive", body)
	req.Header.Set("Authorization", "Bearer "+v.token)
	resp, err := v.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The handler is stalled on the unread response (socket buffers are far smaller than
	// 64 MiB); the storage goes away under it.
	v.sftp.Stop()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= 64<<20 {
		t.Fatalf("read %d bytes, err %v: the cut archive looks complete", n, err)
	}
}
