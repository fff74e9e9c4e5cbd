// Package whepclient plays a WHEP endpoint with pion: the viewer of relaycast's tests, its
// end-to-end suite and cmd/relaybench.
//
// [Dial] creates a peer connection receiving one video and one audio track, POSTs the
// offer with all its candidates (it does not trickle), applies the answer and returns once
// ICE and DTLS are connected. The exchange is package signal's [signal.Client], shared
// with ingest/whip/whipclient (egress may import ingest/whip's shared pieces, never the
// other way round).
//
// A Player reads its tracks on pion's goroutines and keeps what a test or a load tool
// checks ([Player.Stats]): RTP packets and bytes per kind, the arrival of the first video
// packet and of the first complete H.264 keyframe, the first SPS seen (depacketized,
// RFC 6184), invalid Opus packets, and optionally the first Opus RTP timestamps
// ([Options.KeepOpusTimestamps]). It depacketizes H.264 only until the first keyframe,
// unless [Options.OnVideo] asks for every access unit, so that many players cost little.
// [Player.Close] DELETEs the session resource, closes the peer connection and waits for
// the readers. Nothing here logs; errors never carry the endpoint URL (it may hold a
// playback token).
package whepclient
