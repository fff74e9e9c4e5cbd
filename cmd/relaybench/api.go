package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// streamTarget is one stream under test: where its publisher sends and its readers read.
type streamTarget struct {
	index       int
	id          int64 // the API's stream id when relaybench created it, else 0
	playbackID  string
	rtmpPublish string // rtmp://host:port/live/KEY
	whip        string // http://host:port/api/stream/KEY/webrtc/whip
	rtmpPlay    string // rtmp://host:port/live/PLAYBACK_ID
	rtspPlay    string
	hls         string
	whep        string
}

// apiClient talks to relaycast's REST API.
type apiClient struct {
	base  string // http://host:port
	token string
	http  *http.Client
}

// apiError is an API answer other than the one expected, with relaycast's
// {"error","status"} message.
type apiError struct {
	method, path string
	status       int
	msg          string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.msg)
}

// call sends a JSON request and decodes the JSON answer into out (if not nil). A status
// other than 2xx is an *apiError. A 429 (relaycast's per-user API rate limit) is retried
// after its Retry-After, while ctx lasts.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for {
		status, retry, b, err := c.do(ctx, method, path, payload)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if status == http.StatusTooManyRequests {
			if !waitCtx(ctx, retry) {
				return fmt.Errorf("%s %s: rate limited: %w", method, path, ctx.Err())
			}
			continue
		}
		if status/100 != 2 {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(b, &e) != nil || e.Error == "" {
				e.Error = strings.TrimSpace(string(b[:min(len(b), 200)]))
			}
			return &apiError{method: method, path: path, status: status, msg: e.Error}
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s %s: answer: %w", method, path, err)
			}
		}
		return nil
	}
}

// do sends one request and returns the status, the Retry-After wait and the body.
func (c *apiClient) do(ctx context.Context, method, path string, payload []byte) (int, time.Duration, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, 0, nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, 0, nil, err
	}
	retry := time.Second
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retry = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retry, b, nil
}

// setup creates the first admin user (POST /api/setup); it fails once a user exists.
func (c *apiClient) setup(ctx context.Context, user, password string) error {
	return c.call(ctx, http.MethodPost, "/api/setup",
		map[string]string{"username": user, "password": password}, nil)
}

// login gets a JWT (POST /api/token) and keeps it for later calls.
func (c *apiClient) login(ctx context.Context, user, password string) error {
	var out struct {
		Token string `json:"token"`
	}
	if err := c.call(ctx, http.MethodPost, "/api/token",
		map[string]string{"username": user, "password": password}, &out); err != nil {
		return err
	}
	if out.Token == "" {
		return fmt.Errorf("POST /api/token: no token in the answer")
	}
	c.token = out.Token
	return nil
}

// apiStream is the part of the API's stream object relaybench uses.
type apiStream struct {
	ID           int64  `json:"id"`
	StreamKey    string `json:"stream_key"`
	PlaybackID   string `json:"playback_id"`
	PlaybackURLs struct {
		HLS    string `json:"hls"`
		WebRTC string `json:"webrtc"`
	} `json:"playback_urls"`
	PublishURLs struct {
		RTMP string `json:"rtmp"`
		WHIP string `json:"whip"`
	} `json:"publish_urls"`
}

// createStream creates a public stream (POST /api/streams).
func (c *apiClient) createStream(ctx context.Context, title string) (apiStream, error) {
	var st apiStream
	err := c.call(ctx, http.MethodPost, "/api/streams",
		map[string]any{"title": title, "is_public": true}, &st)
	if err == nil && (st.StreamKey == "" || st.PlaybackID == "") {
		err = fmt.Errorf("POST /api/streams: no stream_key or playback_id in the answer")
	}
	return st, err
}

// deleteStream deletes a stream relaybench created.
func (c *apiClient) deleteStream(ctx context.Context, id int64) error {
	return c.call(ctx, http.MethodDelete, fmt.Sprintf("/api/streams/%d", id), nil, nil)
}

// endpoints are the bases of the URLs relaybench builds for a stream.
type endpoints struct {
	api  string // http://host:port
	rtmp string // rtmp://host:port/live
	rtsp string // rtsp://host:port/live
}

// defaultEndpoint returns scheme://HOST:port/live with the API's host.
func defaultEndpoint(api, scheme, port string) (string, error) {
	u, err := url.Parse(api)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("-api %q: want http://host:port", api)
	}
	return scheme + "://" + net.JoinHostPort(u.Hostname(), port) + "/live", nil
}

// target builds the URLs of stream i from its key and playback id.
func (e endpoints) target(i int, key, playbackID string) streamTarget {
	return streamTarget{
		index:       i,
		playbackID:  playbackID,
		rtmpPublish: e.rtmp + "/" + key,
		whip:        e.api + "/api/stream/" + key + "/webrtc/whip",
		rtmpPlay:    e.rtmp + "/" + playbackID,
		rtspPlay:    e.rtsp + "/" + playbackID,
		hls:         e.api + "/api/stream/" + playbackID + "/hls/index.m3u8",
		whep:        e.api + "/api/stream/" + playbackID + "/webrtc/whep",
	}
}

// fromAPI builds the target of a stream the API created: its own URLs where the answer
// has them (they name the ports the server is bound to).
func (e endpoints) fromAPI(i int, st apiStream, rtmpGiven bool) streamTarget {
	t := e.target(i, st.StreamKey, st.PlaybackID)
	t.id = st.ID
	if st.PublishURLs.RTMP != "" && !rtmpGiven {
		base := strings.TrimSuffix(st.PublishURLs.RTMP, "/")
		t.rtmpPublish, t.rtmpPlay = base+"/"+st.StreamKey, base+"/"+st.PlaybackID
	}
	if st.PublishURLs.WHIP != "" {
		t.whip = st.PublishURLs.WHIP
	}
	if st.PlaybackURLs.HLS != "" {
		t.hls = st.PlaybackURLs.HLS
	}
	if st.PlaybackURLs.WebRTC != "" {
		t.whep = st.PlaybackURLs.WebRTC
	}
	return t
}
