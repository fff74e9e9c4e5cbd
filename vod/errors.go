package vod

import "errors"

var (
	// ErrClosed is returned by Recorder methods after Close.
	ErrClosed = errors.New("vod: recorder closed")
	// ErrSpoolFull is a session's error state while the spool holds Config.SpoolLimit bytes
	// or more: the session records nothing until space is freed (the stream goes on).
	ErrSpoolFull = errors.New("vod: spool full, recording paused")
	// ErrRecovering is returned by Recover once a session was started: Recover must run
	// before the first Start, or it would repair chunks that are being written.
	ErrRecovering = errors.New("vod: Recover must run before the first Start")
	// ErrInvalidInfo is returned by Start for an invalid SessionInfo or stream id.
	ErrInvalidInfo = errors.New("vod: invalid session info")
	// ErrNoMedia is returned when repairing a chunk that holds no complete cluster: there is
	// nothing to keep (Recover deletes such a file).
	ErrNoMedia = errors.New("vod: chunk holds no media")
	// ErrBadChunk is returned for a chunk file whose structure is not one the recorder
	// writes (not Matroska, wrong time scale, damaged header).
	ErrBadChunk = errors.New("vod: not a recorder chunk")
)
