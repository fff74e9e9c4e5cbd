package rtmp

import (
	"context"
	"net"
	"net/url"
	"strings"
)

// PlayRequest is a play command handed to a [Player].
type PlayRequest struct {
	// App is the application the client connected to ("live"), without its query.
	App string
	// Name is the stream name of the play command (the playback id), without its query.
	Name string
	// Query is the query string of the play name, else of the application, without the
	// '?' ("token=..."). It may carry a viewer's credential: never log it.
	Query string
	// RemoteAddr is the client's address.
	RemoteAddr string
	// Secure reports that the client connected over RTMPS.
	Secure bool
	// StreamID is the RTMP message stream the client created (createStream) and plays on.
	StreamID uint32
}

// Token returns the viewer credential in the query ("token=..."), if any.
func (r PlayRequest) Token() string {
	q, err := url.ParseQuery(r.Query)
	if err != nil {
		return ""
	}
	return q.Get("token")
}

// Player serves RTMP play requests; egress/rtmp implements it (wired by cmd/relaycast, as
// ingest may not import egress).
type Player interface {
	// Play serves one player. The server calls it on the connection's goroutine once the
	// client sent connect, createStream and play, and hands conn over: Play answers the play
	// command itself (onStatus NetStream.Play.Start, StreamNotFound, ...) and owns every read
	// and write on conn until it returns. The server has cleared conn's deadlines and closes
	// conn after Play returns; ctx is cancelled when the server closes. The error is only
	// logged (at debug level: Play logs what matters itself).
	Play(ctx context.Context, req PlayRequest, conn net.Conn) error
}

// PlayerFunc adapts a function to [Player].
type PlayerFunc func(ctx context.Context, req PlayRequest, conn net.Conn) error

// Play calls f.
func (f PlayerFunc) Play(ctx context.Context, req PlayRequest, conn net.Conn) error {
	return f(ctx, req, conn)
}

// splitQuery splits "name?query" and trims the slashes around name.
func splitQuery(s string) (name, query string) {
	name, query, _ = strings.Cut(s, "?")
	return strings.Trim(name, "/"), query
}
