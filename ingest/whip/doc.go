// Package whip accepts WebRTC publishers over WHIP (RFC 9725) — OBS 30+ and browsers — and
// feeds their media to the bus.
//
// # Endpoint
//
// [Server.ServeHTTP] serves POST /api/stream/{stream_key}/webrtc/whip: an SDP offer in
// (application/sdp), 201 Created with the answer, a Location resource
// /api/stream/{stream_key}/webrtc/whip/{session_id}, Accept-Patch and the ICE servers as
// Link headers. DELETE on the resource ends the session, PATCH adds trickled candidates
// (application/trickle-ice-sdpfrag; an ICE restart gets 422), OPTIONS lists the methods.
// The server does not trickle: its answer carries all its candidates (the shared UDP/TCP
// port). Errors are JSON {"error","status"}: 400 bad or unsupported offer, 401 unknown
// key, 403 key not allowed over WHIP, 409 the stream already has a publisher, 415 wrong
// Content-Type. A Bearer token is accepted and ignored: the key is in the URL. The HTTP
// resource model (paths, session table, trickle ICE, the peer connection's life cycle) is
// package signal's, shared with egress/whep; this package admits publishers and turns
// their tracks into bus units.
//
// # Codecs
//
// Each media section is answered with one codec (so the publisher cannot switch):
// video H.264 packetization-mode 1 (constrained baseline preferred, then high, main),
// else AV1, VP9 profile 0, VP8; audio Opus. H.265 is not taken yet. One video and one audio
// track per publisher (no simulcast).
//
// # Media path
//
// Each track is read by one goroutine: RTP packets go through a small reorder buffer
// (UDP reordering, NACK retransmissions), gortsplib's RTP decoders rebuild access units,
// H.264 becomes AVCC with its SPS/PPS in the bus track's configuration record (a change of
// parameter sets installs a new bus track). After a loss, video frames are dropped until
// the next keyframe, which the server requests with a PLI; it also requests one at the
// start and whenever the publisher sent none for Config.KeyframeInterval.
//
// Timestamps: the RTP clocks are unwrapped; the first packet of the session is time 0 and
// each track starts at its arrival time, then follows its RTP clock. When both tracks
// have an RTCP sender report the audio is lined up with the video by the sender's NTP
// clock. The bus publisher is created at the first video keyframe (audio-only sessions:
// the first audio frame); video that does not start within Config.TrackWait is dropped
// and the stream goes live with audio only. Units carry no B-frames (WebRTC has none).
//
// # Life cycle
//
// A session ends on DELETE, ICE failure, ICE disconnected for Config.DisconnectTimeout, no
// ICE connection within Config.ConnectTimeout, the bus refusing the stream, or
// [Server.Close]. Its end closes the bus publisher (the stream's reconnect grace starts)
// and calls Authorizer.Release once. The per-packet path does no logging.
package whip
