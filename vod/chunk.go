package vod

import "time"

// Chunk is one finished chunk file in the spool: closed, renamed from its ".rec" name and
// fsynced, so it can be uploaded.
type Chunk struct {
	// Path is the file's path (Config.SpoolDir joined with the owner and Rel).
	Path string
	// Rel is the path relative to the owner's directory, as it is stored remotely:
	// "StreamName/YYYY-MM-DD_HH-MM-SS/chunk_NNN.mkv".
	Rel string
	// Owner is the user id the recording belongs to.
	Owner int64
	// Session is the session directory relative to the owner's directory:
	// "StreamName/YYYY-MM-DD_HH-MM-SS".
	Session string
	// Seq is the chunk's number in its session, from FirstSeq (0).
	Seq int
	// Duration is the media duration the file declares.
	Duration time.Duration
	// Size is the file size in bytes.
	Size int64
	// Final marks the last chunk of a session: the one closed when the session ended, or
	// a chunk Recover repaired after a crash. Chunks Recover finds already finished are not
	// marked.
	Final bool
}
