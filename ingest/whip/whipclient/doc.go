// Package whipclient publishes to a WHIP endpoint (RFC 9725) with pion: the publisher of
// relaycast's tests, its end-to-end suite and cmd/relaybench.
//
// [Dial] creates a peer connection with one send-only video and one send-only audio track
// (H.264 and Opus unless [Options] say otherwise), POSTs the offer with all its
// candidates (it does not trickle), applies the answer and returns once ICE and DTLS are
// connected. [Publisher.WriteVideo] and [Publisher.WriteAudio] send one frame each: pion
// packetizes it and advances the RTP timestamp by the duration given. [Publisher.Close]
// DELETEs the session resource and closes the peer connection. The exchange itself is
// package signal's [signal.Client], shared with egress/whep/whepclient.
//
// Media helpers feed it: [ReadH264] splits an Annex-B file into access units, [ReadOpus]
// reads the packets of an Ogg Opus file (the Ogg parsing is package ogg's, shared with
// egress/whep), [Generate] makes a clip of both with ffmpeg, and [Publisher.Stream] sends
// a [Media] clip at its real pace.
//
// Writes may block briefly on the peer connection's socket; nothing here logs. Errors never
// carry the endpoint URL, which holds the stream key.
package whipclient
