package control

import (
	"fmt"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/control/store"
)

// streamJSON is a stream on the wire. Field order is the wire order.
//
// Playback URLs carry the public playback id, never the publish key. The publish key
// (stream_key, and publish_urls.whip which embeds it) appears only in the answers to
// POST /api/streams and POST /api/streams/{id}/regenerate-key. Public listings (other
// users' streams) leave out stream_key_prefix, publish_urls and record.
type streamJSON struct {
	ID              int64        `json:"id"`
	UserID          int64        `json:"user_id"`
	Title           string       `json:"title"`
	Description     string       `json:"description"`
	IsPublic        bool         `json:"is_public"`
	RTMPEnabled     bool         `json:"rtmp_enabled"`
	Record          *bool        `json:"record,omitempty"`
	IsLive          int          `json:"is_live"`
	ViewerCount     int          `json:"viewer_count"`
	PlaybackID      string       `json:"playback_id"`
	StreamKey       string       `json:"stream_key,omitempty"`
	StreamKeyPrefix string       `json:"stream_key_prefix,omitempty"`
	ChatChannelID   *int64       `json:"chat_channel_id"`
	CreatedAt       string       `json:"created_at"`
	LastLiveAt      *string      `json:"last_live_at"`
	PlaybackURLs    playbackURLs `json:"playback_urls"`
	PublishURLs     *publishURLs `json:"publish_urls,omitempty"`
	Stats           *streamStats `json:"stats,omitempty"`
}

// playbackURLs are the stream's playback URLs, by pub_ id. For a private stream
// (is_public false; only its owner and admins see it) they carry requires_token: true —
// a viewer must add the owner's credential (Bearer or ?token=) or use the URLs of a
// playback token from POST /api/streams/{id}/playback-token instead. Public streams leave
// the field out.
type playbackURLs struct {
	HLS           string `json:"hls"`
	WebRTC        string `json:"webrtc"`
	Thumbnail     string `json:"thumbnail"`
	RequiresToken bool   `json:"requires_token,omitempty"`
}

// publishURLs are the ingest bases (the key goes in the encoder's stream key field);
// whip embeds the key and is present only where the key is.
type publishURLs struct {
	RTMPS string `json:"rtmps,omitempty"`
	RTMP  string `json:"rtmp,omitempty"`
	WHIP  string `json:"whip,omitempty"`
}

// streamStats describes a live stream from the bus.
type streamStats struct {
	// BitrateKbps is the average ingest bitrate since the stream went live.
	BitrateKbps   int64    `json:"bitrate_kbps"`
	UptimeSeconds int64    `json:"uptime_seconds"`
	VideoCodec    string   `json:"video_codec,omitempty"`
	Resolution    string   `json:"resolution,omitempty"`
	AudioCodec    string   `json:"audio_codec,omitempty"`
	BFrames       bool     `json:"b_frames"`
	Readers       int      `json:"readers"`
	Warnings      []string `json:"warnings,omitempty"`
}

// bFramesWarning is shown while the video has B-frames: WebRTC cannot carry them.
const bFramesWarning = "the video has B-frames, which WebRTC viewers cannot play; set B-frames to 0 in the encoder (HLS is not affected)"

// streamView selects what a view shows.
type streamViewKind int

const (
	viewPublic streamViewKind = iota // someone else's stream in a public listing
	viewOwner                        // the owner's (or an admin's) view
)

// streamView renders st; key is the clear publish key, set only right after it was made.
func (s *Server) streamView(st store.Stream, kind streamViewKind, key string) streamJSON {
	base := s.cfg.PublicURL + "/api/stream/" + st.PlaybackID
	v := streamJSON{
		ID:          st.ID,
		UserID:      st.UserID,
		Title:       st.Title,
		Description: st.Description,
		IsPublic:    st.IsPublic,
		RTMPEnabled: st.RTMPEnabled,
		IsLive:      st.IsLive,
		PlaybackID:  st.PlaybackID,
		CreatedAt:   apiTime(st.CreatedAt),
		LastLiveAt:  apiTimePtr(st.LastLiveAt),
		PlaybackURLs: playbackURLs{HLS: base + "/hls/index.m3u8", WebRTC: base + "/webrtc/whep",
			Thumbnail: base + "/thumbnail", RequiresToken: !st.IsPublic},
	}
	if st.ChatChannelID != 0 {
		id := st.ChatChannelID
		v.ChatChannelID = &id
	}
	if kind == viewOwner {
		v.StreamKeyPrefix = st.KeyPrefix
		v.Record = &st.Record
		v.PublishURLs = &publishURLs{RTMPS: s.cfg.RTMPSURL}
		if s.settings().RTMPPlainEnabled {
			v.PublishURLs.RTMP = s.cfg.RTMPURL
		}
		if key != "" {
			v.StreamKey = key
			v.PublishURLs.WHIP = s.cfg.PublicURL + "/api/stream/" + key + "/webrtc/whip"
		}
	}
	if bs := s.hub.Stream(st.PlaybackID); bs != nil {
		stats := bs.Stats()
		v.ViewerCount = stats.Viewers
		if st.IsLive == store.Live && (stats.State == bus.StateLive || stats.State == bus.StateIdle) {
			v.Stats = s.liveStats(bs, stats)
		}
	}
	return v
}

func (s *Server) liveStats(bs *bus.Stream, stats bus.Stats) *streamStats {
	out := &streamStats{Readers: stats.Readers}
	if !stats.Since.IsZero() {
		up := s.now().Sub(stats.Since)
		out.UptimeSeconds = int64(up.Seconds())
		if ms := up.Milliseconds(); ms > 0 {
			out.BitrateKbps = int64(stats.BytesIn * 8 / uint64(ms)) // bits per ms = kbit/s
		}
	}
	for _, t := range bs.Tracks() {
		switch {
		case t.Codec.IsVideo() && out.VideoCodec == "":
			out.VideoCodec = t.Codec.String()
			if t.Width > 0 && t.Height > 0 {
				out.Resolution = fmt.Sprintf("%dx%d", t.Width, t.Height)
			}
			if t.BFrames {
				out.BFrames = true
				out.Warnings = append(out.Warnings, bFramesWarning)
			}
		case t.Codec.IsAudio() && out.AudioCodec == "":
			out.AudioCodec = t.Codec.String()
		}
	}
	return out
}

func (s *Server) streamViews(list []store.Stream, owner bool) []streamJSON {
	kind := viewPublic
	if owner {
		kind = viewOwner
	}
	out := make([]streamJSON, 0, len(list))
	for _, st := range list {
		out = append(out, s.streamView(st, kind, ""))
	}
	return out
}
