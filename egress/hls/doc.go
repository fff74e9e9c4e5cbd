// Package hls serves relaycast's live streams over HLS: Low-Latency HLS with fMP4 parts by
// default, or plain fMP4 or MPEG-TS segments (Config.Variant). Muxing is done by gohlslib.
//
// # Ownership
//
// A [Server] watches the bus hub and, as soon as a stream goes live (bus.EventLive), starts
// one goroutine that reads the stream from its cached keyframe and feeds one gohlslib
// muxer: the muxer is always on, so the first viewer does not wait for a muxer to start.
// The muxer is produced once per stream and its segments and parts are shared by every
// viewer. The Server owns these goroutines, the viewer-count reporter and the goroutines
// that run gohlslib's (blocking) request handler; Close stops and waits for all of them.
//
// # Stream life cycle
//
//   - Idle (publisher gone, reconnect grace running): the muxer and its playlist stay; a
//     publisher that comes back within the grace continues the same playlist (the bus
//     shifts its timestamps, so the media sequence continues).
//   - New codec parameters (a unit whose Track pointer changed, or bus.EventTracksChanged
//     with a different number of tracks): the muxer is closed and a new one started, with
//     a new segment prefix. Requests to the old playlist get 404 and players reload.
//   - Ended: the muxer closes, the stream is forgotten and later requests get 404.
//
// H.264 and H.265 parameter sets are put in front of every keyframe that lacks them (RTMP
// sends them only in the sequence header). The MPEG-TS variant carries H.264 and AAC only;
// fMP4 variants also carry H.265, VP9, AV1 and Opus (VP9 and AV1 need no configuration
// record: the muxer takes the parameters from the first keyframe's header, resp. sequence
// header OBU, before it writes the init segment). VP8 is carried by no variant. Tracks a
// variant cannot carry are left out and logged when the muxer starts.
//
// # HTTP
//
// [Server.ServeHTTP] serves /api/stream/{playback_id}/hls/{file}. The playback id goes
// through the egress.Resolver (token from ?token= or a Bearer header; the playlists repeat
// the query in the URIs they list). Errors use relaycast's {"error","status"} shape. A
// request for content that does not exist yet (the first playlist, a blocking playlist
// reload, a preload-hinted part) waits at most Config.RequestTimeout, then gets 503.
// Plain playlist requests (not Low-Latency HLS blocking reloads) are answered from
// playlists rendered once per muxer update and kept per file, query and gap handling
// (plcache.go), not rendered per request.
// Playlists are sent with Cache-Control no-cache; segments, parts and init files (named
// with the muxer's random prefix, never reused) with max-age=3600, immutable — "public"
// for public streams, "private" when the request carried a credential (a private stream's
// viewer), so that shared caches never hand it to others. Every response allows any
// origin (CORS): access is decided by the Resolver, not by the origin.
//
// # Viewers
//
// HLS has no connection per viewer: a viewer is a session (remote IP + User-Agent, hashed)
// that requested something within Config.ViewerWindow. Counts go to the bus with
// Stream.SetViewers("hls", n) every Config.ViewerReportInterval.
//
// # Hot path
//
// Writing a unit to the muxer does no logging and no map lookup and reuses its slices;
// muxer errors are counted and logged at most once per 10 s per stream. The stream's bus
// reader paces by video when the muxer carries video (bus.ReaderOptions.PaceByVideo):
// gohlslib cuts on video samples, so audio units are taken with the next video unit.
package hls
