// Package vod records live streams for video on demand. The [Recorder] reads a stream from
// the bus and writes it as Matroska chunks into a local spool, from which the uploader
// (built on vod/storage) sends them to the streamer's storage. This file states the
// recorder's contract.
//
// # Spool layout and naming
//
//	SpoolDir/OWNER/StreamName/YYYY-MM-DD_HH-MM-SS/chunk_NNN.mkv
//
// OWNER is the owner's user id in decimal; StreamName is [SanitizeName] of the stream's
// name (A–Z, a–z, 0–9, space, '_', '.', '-'; never empty, never a leading dot); the
// session directory is the session's start time in UTC, to the second; NNN counts from
// 000 ([FirstSeq]) with at least three digits. [Chunk.Rel] is the path below OWNER, the
// path the chunk gets on the owner's storage. A chunk is written as "chunk_NNN.mkv.rec"
// and renamed to "chunk_NNN.mkv" when it is finished: a name without ".rec" means the file
// is complete and may be uploaded. A session that finds chunks in its directory (same
// stream, same start second, e.g. after a restart) numbers on after them.
//
// # Chunks
//
// Each chunk is a Matroska file that plays on its own: EBML DocType "matroska", the tracks'
// codec configuration (H.264 V_MPEG4/ISO/AVC and H.265 V_MPEGH/ISO/HEVC with their
// decoder configuration records, the AVCC access units as the bus carries them; AAC A_AAC
// with its AudioSpecificConfig; Opus A_OPUS with OpusHead, CodecDelay and SeekPreRoll),
// a Duration, Cues and a SeekHead. Other codecs (VP8, VP9, AV1) are not recorded: the
// session logs it once and records the other tracks. The elements are encoded with
// ebml-go; the recorder lays them out itself (see mkv.go for why).
//
// Timestamps are the units' PTS in milliseconds from the session's first keyframe, kept
// in the stream's decoding order (B-frames included). They continue from chunk to chunk
// and across a publisher's reconnect (the bus keeps the timeline going): chunk N+1 starts
// where chunk N ends, and each chunk declares the duration up to that point, so the
// chunks concatenate without a gap or an overlap. A chunk starts with a video keyframe;
// it is cut at the first keyframe at or after [Config.ChunkDuration] (an audio-only stream
// at the first audio frame at or after it). Audio stamped before the cut that arrives
// after the cutting keyframe still goes to the earlier chunk, so each track splits at the
// same instant. New codec parameters also start a new chunk. When a resumed publisher's
// audio overlaps the previous one's by a frame or two, the overlap is dropped.
//
// # Crash safety
//
// Media is buffered in memory one cluster at a time (at most one second of media, and at
// most [Config.FlushInterval] of wall time when the stream stalls) and each cluster is
// handed to the OS in one write. A process killed at any moment (SIGKILL) leaves a
// ".rec" file whose complete clusters are all the media but the last second or so;
// [Recorder.Recover], called at start-up before the first Start, keeps those clusters,
// writes the duration, cues and sizes and renames the file. A finished chunk is fsynced
// before its rename and the directory after it, so a finished name survives a power
// loss; a ".rec" file is not fsynced while being written.
//
// # Sessions, ordering and callbacks
//
// [Recorder.Start] subscribes to the stream at once (from its cached keyframe) and one
// goroutine per session writes the chunks. The session lasts while the bus stream does:
// a publisher that reconnects within the bus's grace period continues the same session,
// directory and numbering. When the stream ends, [Session.Stop] is called or the recorder
// closes, the chunk being written is finished.
//
// Callbacks run on the session's goroutine and must not block. Per session,
// [Config.OnChunk] reports the finished chunks in number order, the last one (if any)
// with Final set; then [Config.OnSessionEnd]; then [Session.Done] closes. By
// OnSessionEnd the session is no longer the stream's, so a new Start records the next
// session. Sessions are independent: there is no order between their callbacks.
//
// # Slow disk and full spool
//
// The bus never waits for the recorder: a recorder that cannot keep up (a disk slower
// than the stream) is skipped to the newest keyframe by the bus, which counts the skip.
// With [Config.SpoolLimit] set, a session that finds the spool full finishes its chunk,
// records nothing (counting the units in [SessionStats.DroppedSpoolFull]), reports
// [ErrSpoolFull] through [Session.Err] and [Config.OnSpoolFull], and logs at most once a
// minute; the stream itself goes on. Once the uploader has freed room, it records again
// from the next keyframe in a new chunk. A write error is handled alike: the chunk is
// repaired up to its last complete cluster and a new chunk starts after
// [Config.RetryInterval].
package vod
