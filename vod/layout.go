package vod

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SessionDirLayout is the time layout of a session directory name: the session's start
// time in UTC, to the second.
const SessionDirLayout = "2006-01-02_15-04-05"

// FirstSeq is the number of a session's first chunk: chunk_000.mkv, as the API reference names them.
const FirstSeq = 0

// recSuffix marks a chunk that is being written (or was cut by a crash).
const recSuffix = ".rec"

// maxNameLen caps a sanitized stream name (bytes), well under the 255-byte file name limit
// of common file systems.
const maxNameLen = 100

// SanitizeName returns name in a form safe for one path component on the spool and on
// remote storage: the characters A–Z, a–z, 0–9, space, '_', '.' and '-' are kept, every
// other character (one per rune, so "é" gives one '_') becomes '_', surrounding spaces are
// trimmed, a leading '.' becomes '_' (no hidden files, no "..") and the result is at most
// 100 bytes. An empty result is "stream".
func SanitizeName(name string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(name) {
		if b.Len() >= maxNameLen {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == ' ', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimRight(b.String(), " ")
	if out == "" {
		return "stream"
	}
	if out[0] == '.' {
		out = "_" + out[1:]
	}
	return out
}

// SessionInfo names a recording session.
type SessionInfo struct {
	// StreamName is the stream's human name (its title); it is sanitized with
	// SanitizeName for the directory name.
	StreamName string
	// Owner is the id of the user who owns the stream; the spool keeps each owner's
	// recordings under a directory named by the decimal id. Must not be negative.
	Owner int64
	// Start is the session's start time; its UTC form, to the second, names the session
	// directory. Zero means the recorder's clock at Start.
	Start time.Time
}

// sessionRel returns the session directory relative to the owner's directory:
// "StreamName/YYYY-MM-DD_HH-MM-SS".
func (i SessionInfo) sessionRel() string {
	return SanitizeName(i.StreamName) + "/" + i.Start.UTC().Format(SessionDirLayout)
}

// chunkName returns the file name of chunk seq: chunk_000.mkv.
func chunkName(seq int) string {
	return fmt.Sprintf("chunk_%03d.mkv", seq)
}

// parseChunkName returns the sequence number of a chunk file name ("chunk_NNN.mkv", with
// rec reporting a ".rec" suffix).
func parseChunkName(name string) (seq int, rec bool, ok bool) {
	name, rec = strings.CutSuffix(name, recSuffix)
	digits, found := strings.CutPrefix(name, "chunk_")
	if !found {
		return 0, false, false
	}
	digits, found = strings.CutSuffix(digits, ".mkv")
	if !found || len(digits) < 3 || len(digits) > 9 {
		return 0, false, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false, false
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < FirstSeq {
		return 0, false, false
	}
	return n, rec, true
}

// parseRel splits a path relative to the spool, "OWNER/StreamName/YYYY-MM-DD_HH-MM-SS/
// chunk_NNN.mkv[.rec]", into the chunk's fields. It reports false for any other path.
func parseRel(rel string) (c Chunk, rec bool, ok bool) {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 4 {
		return Chunk{}, false, false
	}
	owner, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || owner < 0 || strconv.FormatInt(owner, 10) != parts[0] {
		return Chunk{}, false, false
	}
	if SanitizeName(parts[1]) != parts[1] {
		return Chunk{}, false, false
	}
	if _, err := time.Parse(SessionDirLayout, parts[2]); err != nil {
		return Chunk{}, false, false
	}
	seq, rec, ok := parseChunkName(parts[3])
	if !ok {
		return Chunk{}, false, false
	}
	session := parts[1] + "/" + parts[2]
	name, _ := strings.CutSuffix(parts[3], recSuffix)
	return Chunk{Owner: owner, Session: session, Seq: seq, Rel: session + "/" + name}, rec, true
}
