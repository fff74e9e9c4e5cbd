// Package rtmpguard keeps malformed AMF0 from reaching go-amf0, the AMF0 decoder of go-rtmp
// and of relaycast's RTMP code, where it can end the whole process.
//
// # Why
//
// go-amf0 v0.1.0 reads a strict array's 32-bit element count and allocates a slice of that
// many values (up to 2^31-1, 32 GiB) before it reads a single element, and it recurses once
// per nesting level without a limit. A 20-byte body can therefore ask for 32 GiB or for a
// stack deeper than Go allows: both are fatal runtime errors, which recover cannot catch.
// go-rtmp decodes every AMF0 command a client sends (connect's command object is the first)
// with go-amf0, so before this package any TCP client could end the server with one message.
//
// # CheckAMF0
//
// [CheckAMF0] walks a body as a sequence of AMF0 values without allocating and refuses it
// ([ErrMalformed]) when a length or count runs past the end, a strict or ECMA array
// declares more elements than there are bytes left, containers nest deeper than
// [MaxDepth], or go-amf0 would frame the bytes differently from the specification (a
// non-empty object after a non-null value in an ECMA array: go-amf0 reuses the value
// there and reads the object's keys only). When it accepts a body, decoding it with
// go-amf0 value after value into `any` (or into maps, as go-rtmp's connect does) consumes
// exactly the values CheckAMF0 walked, allocates in proportion to the body's length and
// recurses at most MaxDepth levels. go-amf0 may still fail or panic on an accepted body;
// its callers keep their recover.
//
// Decoding a value into a typed target is not covered: go-amf0 reads an object decoded
// into a string or a number as keys only. A caller that decodes typed values checks their
// markers first, as Conn does for go-rtmp's command name and transaction ID.
//
// # Conn
//
// [Conn] is the server side of an RTMP connection, put in front of go-rtmp. It passes the
// handshake through and then follows the client's chunk stream exactly as go-rtmp v0.0.7
// reads it — including where go-rtmp departs from the specification: no extended
// timestamp on type-3 chunks, Abort messages ignored — because a guard that frames the
// stream differently from its consumer can be walked around. Where go-rtmp's framing
// depends on more than the bytes (it misreads 3-byte chunk basic headers), or where
// following it would assemble messages the specification does not (a header that changes
// a message in progress), the guard refuses the stream instead.
//
// Before go-rtmp can read the last byte of a command message (types 20 and 17) or data
// message (types 18 and 15), the body is checked as go-rtmp will decode it: a command's
// name must be a string and its transaction ID a number, a data message's name a string,
// and the rest must pass CheckAMF0 — except after the name @setDataFrame, whose values
// go-rtmp hands to its handler undecoded (relaycast's ingest checks them itself and
// ignores bad metadata). If the check fails, Read returns the error instead of the bytes,
// go-rtmp ends that connection, and the process goes on.
//
// Read never blocks beyond the wrapped connection's Read. Audio and video pass without a
// copy or an allocation; a connection holds at most 64 chunk streams and 16 MiB of command
// and data messages being assembled. The package follows go-rtmp v0.0.7 and go-amf0
// v0.1.0: a new version of either needs the fuzz targets run again (FuzzConn reads with
// go-rtmp's own chunk reader behind a Conn and fails when the two frame a message apart).
package rtmpguard
