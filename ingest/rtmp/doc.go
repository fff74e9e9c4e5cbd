// Package rtmp is relaycast's RTMP and RTMPS ingest. It accepts publishers (OBS, ffmpeg) at
// rtmp://host/live/KEY and rtmps://host/live/KEY, asks the [ingest.Authorizer] whether the
// key may publish, and turns the FLV-framed audio and video messages into [bus] units:
// H.264, H.265 (Enhanced RTMP "hvc1", or the legacy codec id 12) and AAC. Other codecs are
// refused by closing the connection.
//
// # Ownership
//
// A [Server] owns its listeners and every connection; each connection runs on one goroutine
// (go-rtmp's, registered with the server). [Server.Close] closes the listeners and the
// connections and waits for all of them.
//
// # Publishing
//
// A publisher is admitted once: plain RTMP must be enabled (Config.PlainEnabled) for a
// plain connection, the Authorizer must grant the key, and the stream must not already be
// live. A refusal is answered with NetStream.Publish.Failed, logged once (with the key
// redacted) and the connection closed. Every granted publisher is released exactly once
// (Authorizer.Release) when its connection ends.
//
// The stream goes to the bus when its tracks are known: the sequence headers of the tracks
// onMetaData announced (both audio and video without metadata) and the first video frame,
// or after Config.TrackWait / 50 media packets with the tracks that are there. Units that
// arrive before are buffered, so the first keyframe is not lost. A changed sequence header
// mid-stream installs a new track (Publisher.SetTrack); a track that starts only after
// publishing began is ignored.
//
// # Playing
//
// Play requests (rtmp://host/live/PLAYBACK_ID[?token=...]) go to Config.Player (egress/rtmp,
// wired by cmd/relaycast), or are refused with NetStream.Play.Failed when it is nil. After
// go-rtmp's handshake, connect and createStream, the connection's goroutine calls
// Player.Play with the request and the raw socket (no deadline; the TLS connection for
// RTMPS) and the Player owns it until it returns; the server then closes it. A connection
// that published cannot play, and a playing connection cannot publish.
//
// # Timestamps
//
// RTMP's 32-bit millisecond timestamps are extended across their wrap; DTS increases per
// track (a publisher clock that jumps back by more than a second is re-based, smaller
// steps back are pushed forward by 1 ms); PTS = DTS + the FLV composition time.
//
// # Blocking and faults
//
// Nothing on the media path blocks: bus writes never wait for readers. Authorizer.Authorize
// runs on the connection's goroutine, bounded by Config.HandshakeTimeout. A connection is
// closed on its own when it sends malformed data (a bad FLV tag, codec record or NAL unit
// framing, garbage RTMP chunks, AMF0 that go-amf0 must not decode: every connection is
// read through an [rtmpguard.Conn]), an unsupported codec, nothing during setup
// (HandshakeTimeout) or no media while publishing (IdleTimeout); one log line says why.
// Per packet the server allocates the unit and one copy of the payload and logs nothing.
// A publisher's socket is read ahead 64 KiB at a time, on Linux with raw read(2) calls
// that do not wake the Go runtime's monitor thread (rawread_linux.go).
package rtmp
