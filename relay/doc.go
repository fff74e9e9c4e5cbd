// Package relay pushes live streams from the bus to external RTMP and RTMPS servers
// (Twitch, YouTube, Kick, another relaycast, any RTMP server), passthrough.
//
// A Manager follows the hub: when a stream goes live it asks its TargetSource for the
// stream's enabled targets and runs one worker per target; when the stream ends (after the
// bus's reconnect grace, so a publisher's short drop does not end relays) the workers
// stop. Reload re-reads a stream's targets at once, so that adding, editing, disabling or
// deleting a relay while live takes effect immediately.
//
// Each worker dials its target with egress/rtmp's publish client, then reads the stream
// from the bus starting at the cached keyframe and writes every unit. Failures never touch
// other workers, viewers or recording:
//
//   - a refused connection, a drop or a stall (a dial with no answer, a write the server
//     does not take within the write timeout) is retried with capped exponential backoff
//     and jitter (StateRetrying);
//   - a destination that rejects the publish (wrong application or key, egress/rtmp
//     ErrRejected) or an unusable URL is marked StateFailed with the reason and not retried
//     until its target changes or the stream goes live again;
//   - a destination slower than the stream is not buffered for: the bus skips its reader
//     forward to the newest keyframe (counted in Status.Skipped).
//
// Stream keys are in Target.URL only; logs, errors and Status carry the redacted URL.
package relay
