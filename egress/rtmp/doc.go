// Package rtmp is relaycast's RTMP and RTMPS playback (rtmp://host/live/PLAYBACK_ID, for
// ffplay, VLC and other relaycast instances) and its RTMP publish client, which the relays
// use to push streams to other servers.
//
// # Playback
//
// The package owns no listener: ingest/rtmp accepts every RTMP connection and hands play
// requests to [Server.Play] through its Player interface, after go-rtmp did the handshake,
// connect and createStream. From then on Play owns the socket: it answers the play command
// itself (NetStream.Play.StreamNotFound for an unknown or offline stream, Play.Failed when
// the Resolver forbids it) and writes the stream with its own chunk writer. go-rtmp's writer
// is idle by then and its reader blocked in the Play call; the bytes the client sends after
// play (acknowledgements, buffer length) are read and dropped.
//
// # Serialized once
//
// A stream with RTMP viewers has one feed: one bus reader whose goroutine turns each unit
// into its RTMP message — FLV tag, chunked for [ChunkSize], behind a type-0 chunk header
// with the absolute timestamp — once, into a ring shared by every viewer of the stream
// (like the bus's own ring: viewers hold positions, the feed never waits for them). Since
// every message starts with a full header and the chunk size is fixed, a message's bytes
// are the same for every viewer wherever it joined. What differs per viewer is written per
// viewer and is rare: the play answer, the metadata and sequence headers at the start and
// on a codec change, and the message stream id for a client that plays on another id
// than 1. Timestamps are the bus's own (PTS/DTS in ms, composition time for B-frames).
//
// A new viewer starts at the newest keyframe in the ring (the bus's GOP cache when the feed
// starts), so its first frame is written with the play answer. Each write gathers every
// ready message into one writev (RTMPS: one TLS write).
//
// # Slow viewers
//
// A viewer that falls more than Config.MaxQueuedBytes behind the live edge, or that the
// ring overtakes, skips to the newest keyframe; the skip is counted ([Stats]) and logged at
// most once per Config.SkipLogInterval. A viewer whose socket accepts nothing for
// Config.WriteTimeout is disconnected. Neither affects the other viewers or the bus.
//
// # Publishing
//
// [Dial] connects to an rtmp:// or rtmps:// URL and publishes; [Publisher.WriteUnit] sends
// bus units through a [Muxer] (timestamps start at 0). Errors and [RedactURL] never show
// the stream key.
package rtmp
