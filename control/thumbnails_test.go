package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// fakeThumbs is a Thumbnailer answering a fixed JPEG for any live stream.
type fakeThumbs struct{ jpg []byte }

func (f fakeThumbs) JPEG(context.Context, string) ([]byte, time.Time, error) {
	if f.jpg == nil {
		return nil, time.Time{}, errors.New("none")
	}
	return f.jpg, time.Now(), nil
}

func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		img.Set(x, x%h, color.RGBA{200, 10, 10, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// uploadThumbnail posts data as the multipart "thumbnail" field.
func (e *env) uploadThumbnail(token string, id int64, data []byte) (int, []byte) {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("thumbnail", "t.png")
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/streams/%d/thumbnail", e.http.URL, id), &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// TestThumbnails: a custom thumbnail is validated, re-encoded as JPEG and served by
// playback id or publish key; without one, a live stream gets the dynamic one and an
// offline stream 404; a private stream's needs the viewer's credential.
func TestThumbnails(t *testing.T) {
	dynamic := []byte{0xff, 0xd8, 0xff, 0xe0, 'd', 'y', 'n'}
	e := newEnv(t, withConfig(func(c *Config) {
		c.ThumbnailDir = t.TempDir()
		c.Thumbnails = fakeThumbs{jpg: dynamic}
	}))
	admin := e.setup()
	bob := e.user(admin, "bob")
	st := e.createStream(admin, map[string]any{"title": "thumbs"})
	path := "/api/stream/" + st.PlaybackID + "/thumbnail"

	if code, _, _ := e.do("GET", path, "", nil); code != 404 {
		t.Fatalf("offline without a custom thumbnail: %d", code)
	}
	if code, body := e.uploadThumbnail(admin, st.ID, []byte("GIF89a not an image")); code != 400 {
		t.Fatalf("not an image: %d %s", code, body)
	}
	if code, body := e.uploadThumbnail(admin, st.ID, bytes.Repeat([]byte{1}, 3<<20)); code != 413 {
		t.Fatalf("3 MB: %d %s", code, body)
	}
	if code, _ := e.uploadThumbnail(bob, st.ID, pngImage(t, 64, 36)); code != 404 {
		t.Fatalf("another user's upload: %d", code)
	}
	if code, body := e.uploadThumbnail(admin, st.ID, pngImage(t, 64, 36)); code != 200 {
		t.Fatalf("upload: %d %s", code, body)
	}
	for _, p := range []string{path, "/api/stream/" + st.StreamKey + "/thumbnail"} {
		code, body, h := e.do("GET", p, "", nil)
		img, err := jpeg.Decode(bytes.NewReader(body))
		if code != 200 || err != nil || h.Get("Content-Type") != "image/jpeg" || img.Bounds().Dx() != 64 ||
			h.Get("Cache-Control") != "public, max-age=15" {
			t.Fatalf("GET %s: %d %v %v", p, code, err, h)
		}
	}
	e.call(200, "DELETE", fmt.Sprintf("/api/streams/%d/thumbnail", st.ID), admin, nil, nil)
	e.wantError(404, "DELETE", fmt.Sprintf("/api/streams/%d/thumbnail", st.ID), admin, nil)

	// Live: the dynamic thumbnail.
	p, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, 5*time.Second, "live", func() bool {
		code, body, _ := e.do("GET", path, "", nil)
		return code == 200 && bytes.Equal(body, dynamic)
	})

	// Private: the owner's credential (or a playback token) is needed.
	e.call(200, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), admin, map[string]any{"is_public": false}, nil)
	e.wantError(403, "GET", path, "", nil)
	if code, body, h := e.do("GET", path, admin, nil); code != 200 || !bytes.Equal(body, dynamic) || h.Get("Cache-Control") != "private, max-age=15" {
		t.Fatalf("owner of a private stream: %d %v", code, h)
	}
	e.wantError(404, "GET", "/api/stream/pub_nosuchstream000000000000/thumbnail", "", nil)
}
