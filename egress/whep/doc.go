// Package whep plays relaycast's live streams to WebRTC viewers over WHEP (the playback
// counterpart of WHIP, RFC 9725's HTTP shape).
//
// # Endpoint
//
// [Server.ServeHTTP] serves POST /api/stream/{playback_id}/webrtc/whep: the viewer's SDP
// offer in (application/sdp), 201 Created with the answer, a Location resource
// /api/stream/{playback_id}/webrtc/whep/{session_id}, Accept-Patch and the ICE servers as
// Link headers. DELETE ends the session, PATCH adds trickled candidates (an ICE restart gets
// 422), OPTIONS lists the methods. The playback id goes through the egress.Resolver
// (token from ?token= or a Bearer header). Errors are JSON {"error","status"}: 400 bad offer
// or an offer that can receive none of the stream's codecs, 403 forbidden, 404 unknown
// playback id or offline stream, 415 wrong Content-Type. The HTTP resource model is
// WHIP's, from ingest/whip/signal; this package admits viewers and feeds their tracks.
//
// # Media
//
// Video: H.264 passed through, never transcoded. The track is declared with the offered
// H.264 variant closest to the source's profile. Each unit is packetized once per stream
// (RFC 6184, gortsplib's encoder; SPS/PPS put in front of keyframes that lack them) and
// the payloads are shared by all viewers; each viewer only writes its own sequence
// numbers and timestamps. WebRTC has no B-frames: video with B-frames (bus Track.BFrames,
// OBS's default of 2) is still sent, in decoding order with presentation timestamps, and
// a warning is logged once per stream; players may stutter. Publishers should set
// B-frames to 0. Other video codecs are not sent (yet).
//
// Audio: Opus is passed through. AAC (RTMP, RTSP publishers) is transcoded to Opus by one
// ffmpeg process per stream, shared by all the stream's WHEP viewers, started with the
// first and stopped with the last (see transcoder). Its output fans out to the viewers
// without blocking: each viewer has a small inbox that drops its oldest packet when full.
// Opus packets are dated back on the bus timeline, so audio and video stay in sync.
//
// # Sessions
//
// A session reads the bus with one reader (ReaderOptions.Viewer: it counts in the
// stream's viewer_count) driven by one goroutine, from the cached keyframe. A slow viewer
// is the bus's problem: the bus skips it forward to the newest keyframe, the writer never
// waits. A session ends on DELETE, ICE failure, ICE disconnected for
// Config.DisconnectTimeout, no connection within Config.ConnectTimeout, the stream's end,
// or [Server.Close]. Writing RTP does no logging and allocates nothing per viewer.
package whep
