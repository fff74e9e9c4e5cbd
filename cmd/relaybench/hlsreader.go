package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// HLS client limits.
const (
	hlsRequestTimeout = 15 * time.Second       // one request, a blocking one included
	hlsRetryWait      = 200 * time.Millisecond // after a failed request
	hlsMaxFailures    = 25                     // consecutive failed requests before giving up
)

// errHLSStatus is an HLS answer other than 200.
var errHLSStatus = errors.New("hls: unexpected status")

// readHLS plays an HLS stream like a low-latency player until ctx ends, recording what
// arrives into rs. From the multivariant playlist it follows the first variant's media
// playlist and the audio rendition of its group, each on its own goroutine. Every media
// playlist is followed from its newest independent part (LL-HLS) or newest segment:
// each new part (LL-HLS: the preload-hinted part is requested before it is complete, and
// the playlist reloaded with _HLS_msn/_HLS_part) or, without parts, each new segment is
// downloaded whole and its video samples are parsed (fMP4 or MPEG-TS) for keyframes and
// stamps. The full segments of parts already downloaded are not fetched again, as an
// LL-HLS player does not.
func readHLS(ctx context.Context, rawURL string, rs *readerStats) error {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	h := &hlsClient{http: &http.Client{Transport: tr}, rs: rs}
	rs.begin(time.Now())
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("hls: bad URL: %w", err)
	}
	body, err := h.getRetry(ctx, u)
	if err != nil || body == nil {
		return err
	}
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		return fmt.Errorf("hls: %s: %w", u.Path, err)
	}
	mv, ok := pl.(*playlist.Multivariant)
	if !ok {
		return h.follow(ctx, u, true)
	}
	if len(mv.Variants) == 0 {
		return fmt.Errorf("hls: multivariant playlist without variants")
	}
	v := mv.Variants[0]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		errs = make(chan error, len(mv.Renditions))
	)
	for _, r := range mv.Renditions {
		if r.Type != playlist.MultivariantRenditionTypeAudio || r.GroupID != v.Audio || r.URI == nil {
			continue
		}
		au := u.ResolveReference(mustRef(*r.URI))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.follow(ctx, au, false)
		}()
	}
	err = h.follow(ctx, u.ResolveReference(mustRef(v.URI)), true)
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		if err == nil {
			err = e
		}
	}
	return err
}

// mustRef parses a playlist URI as a reference; an unparsable one becomes a path that
// will fail when requested.
func mustRef(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{Path: s}
	}
	return u
}

// hlsClient does the HTTP of one HLS reader.
type hlsClient struct {
	http *http.Client
	rs   *readerStats
}

// get fetches u and returns its body and the time it was received whole.
func (h *hlsClient) get(ctx context.Context, u *url.URL) ([]byte, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, hlsRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("hls: %s: %w", u.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	at := time.Now()
	if err != nil {
		return nil, at, fmt.Errorf("hls: %s: %w", u.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, at, fmt.Errorf("%w %d for %s", errHLSStatus, resp.StatusCode, u.Path)
	}
	return body, at, nil
}

// getRetry is get, retried after failures (a stream that is not live yet answers 404 or
// 503) until hlsMaxFailures in a row.
func (h *hlsClient) getRetry(ctx context.Context, u *url.URL) ([]byte, error) {
	for n := 1; ; n++ {
		body, _, err := h.get(ctx, u)
		if err == nil {
			return body, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if n == hlsMaxFailures {
			return nil, err
		}
		if !waitCtx(ctx, hlsRetryWait) {
			return nil, nil
		}
	}
}

// hlsEntry is a part or a segment of a media playlist.
type hlsEntry struct {
	uri         string // resolved
	independent bool
}

// hlsPlaylist is a media playlist as a player follows it.
type hlsPlaylist struct {
	pl      *playlist.Media
	entries []hlsEntry
	// nextMSN and nextPart name the part after the last one listed: the in-progress
	// segment and its part count (what a blocking reload asks for).
	nextMSN, nextPart int
	hint              string // the preload-hinted part, resolved; "" when none
}

func parseMediaPlaylist(base *url.URL, body []byte) (*hlsPlaylist, error) {
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil {
		return nil, err
	}
	p := &hlsPlaylist{pl: &pl, nextMSN: pl.MediaSequence + len(pl.Segments), nextPart: len(pl.Parts)}
	res := func(s string) string { return base.ResolveReference(mustRef(s)).String() }
	for _, s := range pl.Segments {
		if s.Gap {
			continue
		}
		if len(s.Parts) == 0 || pl.PartInf == nil {
			p.entries = append(p.entries, hlsEntry{uri: res(s.URI), independent: true})
			continue
		}
		for _, pt := range s.Parts {
			p.entries = append(p.entries, hlsEntry{uri: res(pt.URI), independent: pt.Independent})
		}
	}
	for _, pt := range pl.Parts {
		p.entries = append(p.entries, hlsEntry{uri: res(pt.URI), independent: pt.Independent})
	}
	if pl.PreloadHint != nil {
		p.hint = res(pl.PreloadHint.URI)
	}
	return p, nil
}

// lowLatency reports whether the playlist has parts and blocking reloads.
func (p *hlsPlaylist) lowLatency() bool {
	return p.pl.PartInf != nil && p.pl.ServerControl != nil && p.pl.ServerControl.CanBlockReload
}

// pending returns the entries after the newest one in done. With none of them in done
// (the start, or a reader so late that its position left the playlist), it returns the
// entries from the newest independent one, and resync is true when done was not empty.
func (p *hlsPlaylist) pending(done map[string]bool) (out []hlsEntry, resync bool) {
	for i := len(p.entries) - 1; i >= 0; i-- {
		if done[p.entries[i].uri] {
			return p.entries[i+1:], false
		}
	}
	for i := len(p.entries) - 1; i >= 0; i-- {
		if p.entries[i].independent {
			return p.entries[i:], len(done) > 0
		}
	}
	return nil, len(done) > 0
}

// hlsFollower follows one media playlist.
type hlsFollower struct {
	h       *hlsClient
	u       *url.URL
	video   bool
	done    map[string]bool
	initURI string
	trackID int // the fMP4 video track, 0 when unknown
}

// follow downloads every new part or segment of the media playlist at u until ctx ends.
// video selects whether samples are parsed (the video playlist) or only counted.
func (h *hlsClient) follow(ctx context.Context, u *url.URL, video bool) error {
	f := &hlsFollower{h: h, u: u, video: video, done: map[string]bool{}}
	var query url.Values // the blocking reload's
	for failures := 0; ; {
		if ctx.Err() != nil {
			return nil
		}
		pu := *u
		if query != nil {
			q := u.Query()
			for k, v := range query {
				q[k] = v
			}
			pu.RawQuery = q.Encode()
		}
		body, _, err := h.get(ctx, &pu)
		var p *hlsPlaylist
		if err == nil {
			if p, err = parseMediaPlaylist(u, body); err != nil {
				err = fmt.Errorf("hls: %s: %w", u.Path, err)
			}
		}
		if err == nil {
			err = f.step(ctx, p)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if failures++; failures >= hlsMaxFailures {
				return err
			}
			query = nil
			waitCtx(ctx, hlsRetryWait)
			continue
		}
		failures = 0
		if !p.lowLatency() {
			target := time.Duration(p.pl.TargetDuration) * time.Second
			h.rs.atLeastStallAfter(target * 3 / 2)
			waitCtx(ctx, max(target/2, 100*time.Millisecond))
			query = nil
			continue
		}
		// The next reload blocks until the part after the last listed one exists (or, after
		// the hinted part was fetched, returns at once with it).
		query = url.Values{"_HLS_msn": {strconv.Itoa(p.nextMSN)}, "_HLS_part": {strconv.Itoa(p.nextPart)}}
	}
}

// step downloads what playlist p lists that is new, then, on LL-HLS, the preload-hinted
// part: that request blocks until the part is complete.
func (f *hlsFollower) step(ctx context.Context, p *hlsPlaylist) error {
	if p.pl.Map != nil {
		if err := f.init(ctx, f.u.ResolveReference(mustRef(p.pl.Map.URI))); err != nil {
			return err
		}
	}
	todo, resync := p.pending(f.done)
	if resync {
		f.h.rs.mu.Lock()
		f.h.rs.gaps++ // the playlist moved past the reader: media was skipped
		f.h.rs.mu.Unlock()
	}
	for _, e := range todo {
		if err := f.media(ctx, e.uri, p.pl.Map != nil); err != nil {
			return err
		}
	}
	if p.lowLatency() && p.hint != "" && !f.done[p.hint] && len(f.done) > 0 {
		if err := f.media(ctx, p.hint, p.pl.Map != nil); err != nil {
			return err
		}
	}
	// Forget what left the playlist; keep the hint.
	listed := make(map[string]bool, len(p.entries))
	for _, e := range p.entries {
		listed[e.uri] = true
	}
	for k := range f.done {
		if !listed[k] && k != p.hint {
			delete(f.done, k)
		}
	}
	return nil
}

// init fetches the fMP4 initialization section when it changed and finds the video track.
func (f *hlsFollower) init(ctx context.Context, u *url.URL) error {
	if u.String() == f.initURI {
		return nil
	}
	body, _, err := f.h.get(ctx, u)
	if err != nil {
		return err
	}
	f.h.rs.bytes.Add(int64(len(body)))
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(body)); err != nil {
		return fmt.Errorf("hls: init %s: %w", u.Path, err)
	}
	f.trackID = 0
	for _, t := range in.Tracks {
		if _, ok := t.Codec.(*mp4codecs.H264); ok {
			f.trackID = t.ID
			break
		}
	}
	f.initURI = u.String()
	return nil
}

// media downloads one part or segment and records its samples.
func (f *hlsFollower) media(ctx context.Context, raw string, isFMP4 bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	body, at, err := f.h.get(ctx, u)
	if err != nil {
		return err
	}
	f.done[raw] = true
	rs := f.h.rs
	rs.bytes.Add(int64(len(body)))
	if !f.video {
		rs.media(at)
		return nil
	}
	if isFMP4 {
		return f.fmp4Samples(body, at, u)
	}
	return f.tsSamples(body, at, u)
}

func (f *hlsFollower) fmp4Samples(body []byte, at time.Time, u *url.URL) error {
	var parts fmp4.Parts
	if err := parts.Unmarshal(body); err != nil {
		return fmt.Errorf("hls: %s: %w", u.Path, err)
	}
	rs := f.h.rs
	rs.media(at)
	for _, p := range parts {
		for _, t := range p.Tracks {
			if t.ID != f.trackID {
				continue
			}
			for _, s := range t.Samples {
				v := videoFrame{at: at, key: !s.IsNonSyncSample}
				v.st, v.stamped = stampInAVCC(s.Payload)
				rs.video(v)
			}
		}
	}
	return nil
}

func (f *hlsFollower) tsSamples(body []byte, at time.Time, u *url.URL) error {
	r := &mpegts.Reader{R: bytes.NewReader(body)}
	if err := r.Initialize(); err != nil {
		return fmt.Errorf("hls: %s: %w", u.Path, err)
	}
	rs := f.h.rs
	rs.media(at)
	for _, t := range r.Tracks() {
		if _, ok := t.Codec.(*tscodecs.H264); ok {
			r.OnDataH264(t, func(_, _ int64, au [][]byte) error {
				v := videoFrame{at: at, key: nalusHaveIDR(au)}
				v.st, v.stamped = stampInNALUs(au)
				rs.video(v)
				return nil
			})
		}
	}
	for {
		if err := r.Read(); err != nil {
			return nil // the segment's end (or a broken tail, which the reader resyncs past)
		}
	}
}
