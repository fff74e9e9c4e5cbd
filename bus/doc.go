// Package bus is relaycast's in-process packet bus: it carries the access units of every
// live stream from the one publisher that feeds it to any number of readers (HLS muxers,
// WebRTC sessions, RTMP players, relays, the recorder).
//
// # Ownership
//
// A [Hub] owns every [Stream]. A stream has at most one [Publisher] at a time; a second
// publisher of the same id gets [ErrBusy]. When the publisher closes, the stream enters a
// grace period (Config.ReconnectGrace, 30 s by default): readers stay attached, and a new
// Publish of the same id within the grace resumes the same stream, with timestamps shifted
// so that they continue one frame after where the previous publisher stopped (the
// outage is not inserted into the timeline: muxers see an ordinary frame step). When the grace runs out the
// stream ends and its readers get [ErrEnded].
//
// # Ordering and blocking
//
// Each stream has one ring of units shared by all its readers; each [Reader] holds only a
// position in it. [Publisher.Write] never blocks on readers and allocates nothing per
// reader. Readers see units in the order they were written. A reader is driven by its
// caller's goroutine ([Reader.Next]); the bus starts no goroutine per reader. A reader
// whose output advances with the video (a muxer) may ask to be woken by video units only
// (ReaderOptions.PaceByVideo): it then takes the units written since in one turn, in order.
//
// # Slow readers
//
// A reader that falls so far behind that the ring overwrote its position is skipped forward
// to the newest keyframe (or, when the ring holds none, to the next one written). The skip
// is the reader's fault: it is counted in [Reader.Dropped] and in the stream's stats, and the
// writer never waits.
//
// # GOP cache
//
// The ring keeps the units since the last video keyframe (capped by the ring size), so a new
// reader starts at once, from that keyframe, with the units' true timestamps.
//
// # Events
//
// [Hub.Watch] callbacks receive [Event]s (Live, TracksChanged, Idle, Ended) in order, one
// at a time, on the goroutine of the call that caused them. They must not block.
package bus
