package control

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/relay"
)

// Stream event types delivered to Subscribe callbacks.
const (
	EventStreamLive    = "stream.live"
	EventStreamOffline = "stream.offline"
)

// StreamEvent tells that a stream went live or offline. It is what relays, VOD, webhooks
// and the SSE feed react to.
type StreamEvent struct {
	// Type is EventStreamLive or EventStreamOffline.
	Type string
	// StreamID is the stream's database id.
	StreamID int64
	// PlaybackID is the stream's public playback id, which is also its bus stream id.
	PlaybackID string
	// OwnerID is the id of the user who owns the stream.
	OwnerID int64
	// Time is when the bus saw the change.
	Time time.Time
}

// Subscribe registers fn to receive every stream event from now on. Events come in order,
// one at a time, on the server's live-state goroutine, after the database has recorded
// the change (a GET of the stream in fn sees the new is_live). A stream goes "live" when
// its first publisher starts and "offline" when its bus stream ends (after the reconnect
// grace): a publisher that reconnects within the grace causes no event. fn must not block
// (hand work to your own goroutine). The returned function unregisters fn; a call
// already running may still finish after it returns.
func (s *Server) Subscribe(fn func(StreamEvent)) (cancel func()) {
	s.subsMu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	s.subsMu.Unlock()
	return func() {
		s.subsMu.Lock()
		delete(s.subs, id)
		s.subsMu.Unlock()
	}
}

// liveItem is a live-state change waiting to be written.
type liveItem struct {
	playbackID string
	live       bool
	// encodingDone: the stream's recording is uploaded (Encoding → Offline).
	encodingDone bool
	// relay, when set, is a relay's new status for the event feed.
	relay *relay.Status
	t     time.Time
}

// liveQueue is an unbounded FIFO: the bus's event goroutine pushes without ever waiting
// for the database, and the live goroutine drains it. Unbounded because dropping a change
// would leave a stream's is_live wrong; it holds one small item per publish/end.
type liveQueue struct {
	mu    sync.Mutex
	items []liveItem
	wake  chan struct{}
}

func (q *liveQueue) init() { q.wake = make(chan struct{}, 1) }

func (q *liveQueue) push(it liveItem) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *liveQueue) take() []liveItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// onBusEvent is the Hub.Watch callback: it only queues.
func (s *Server) onBusEvent(e bus.Event) {
	if e.Stream == nil {
		return
	}
	t := e.Time
	if t.IsZero() {
		t = s.now()
	}
	switch e.Type {
	case bus.EventLive:
		s.live.push(liveItem{playbackID: e.Stream.ID(), live: true, t: t})
	case bus.EventEnded:
		s.live.push(liveItem{playbackID: e.Stream.ID(), live: false, t: t})
	}
}

// runLive writes queued live-state changes to the database and notifies subscribers. On
// Close it applies what is already queued, then returns.
func (s *Server) runLive() {
	defer s.wg.Done()
	for {
		select {
		case <-s.live.wake:
			s.applyLive(s.live.take())
		case <-s.stop:
			s.applyLive(s.live.take())
			return
		}
	}
}

func (s *Server) applyLive(items []liveItem) {
	for _, it := range items {
		if it.relay != nil {
			s.publishRelay(*it.relay)
			continue
		}
		if it.encodingDone {
			ctx, cancel := dbCtx()
			done, err := s.store.EncodingDone(ctx, it.playbackID)
			var st store.Stream
			if err == nil && done {
				st, err = s.store.StreamByPlaybackID(ctx, it.playbackID)
			}
			cancel()
			if err != nil {
				s.log.Error("live state", "stream", it.playbackID, "encoding_done", true, "err", err)
			} else if done {
				s.log.Info("stream recording uploaded", "playback_id", it.playbackID)
				s.events.publish(st.UserID, "stream.recording_uploaded", streamEventData(st, it.t))
			}
			continue
		}
		ctx, cancel := dbCtx()
		var st store.Stream
		var changed bool
		var err error
		if !it.live && s.cfg.VOD != nil && s.cfg.VOD.Encoding(it.playbackID) {
			// Offline, but the recording is still being finished and uploaded: Encoding
			// until EncodingDone.
			if changed, err = s.store.SetEncoding(ctx, it.playbackID); err == nil {
				st, err = s.store.StreamByPlaybackID(ctx, it.playbackID)
			}
		} else {
			st, changed, err = s.store.SetLive(ctx, it.playbackID, it.live, it.t)
		}
		cancel()
		if errors.Is(err, store.ErrNotFound) {
			continue // not one of ours (deleted meanwhile, or a test stream)
		}
		if err != nil {
			s.log.Error("live state", "stream", it.playbackID, "live", it.live, "err", err)
			continue
		}
		if !changed {
			continue
		}
		ev := StreamEvent{Type: EventStreamOffline, StreamID: st.ID, PlaybackID: st.PlaybackID, OwnerID: st.UserID, Time: it.t}
		if it.live {
			ev.Type = EventStreamLive
		}
		s.log.Info(ev.Type, "stream_id", st.ID, "playback_id", st.PlaybackID, "title", st.Title, "is_live", st.IsLive)
		if it.live && s.cfg.VOD != nil {
			s.cfg.VOD.StreamLive(st.PlaybackID, st.UserID, st.Title, st.Record, it.t)
		}
		s.events.publish(st.UserID, ev.Type, streamEventData(st, it.t))
		{
			ctx, cancel := dbCtx()
			if it.live {
				s.addNotification(ctx, st.UserID, notifyStreamLive, "Stream Live", fmt.Sprintf("%q is live", st.Title))
				s.activity(ctx, st.UserID, "stream_started", fmt.Sprintf("Started streaming %q", st.Title))
			} else {
				s.activity(ctx, st.UserID, "stream_ended", fmt.Sprintf("Stopped streaming %q", st.Title))
			}
			cancel()
		}
		s.notify(ev)
	}
}

func (s *Server) notify(ev StreamEvent) {
	s.subsMu.Lock()
	fns := make([]func(StreamEvent), 0, len(s.subs))
	for _, id := range slices.Sorted(maps.Keys(s.subs)) {
		fns = append(fns, s.subs[id])
	}
	s.subsMu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// streamEventData is the data of a stream event in the feed.
func streamEventData(st store.Stream, t time.Time) map[string]any {
	return map[string]any{"stream_id": st.ID, "playback_id": st.PlaybackID, "title": st.Title,
		"is_live": st.IsLive, "time": t.UTC().Format(time.RFC3339Nano)}
}

// RelayChanged takes a relay's new status (relay.Config.OnChange) for the event feed. It
// does not wait.
func (s *Server) RelayChanged(st relay.Status) {
	s.live.push(liveItem{playbackID: st.Stream, relay: &st, t: s.now()})
}

// publishRelay sends a relay status to its stream owner's feed.
func (s *Server) publishRelay(rs relay.Status) {
	ctx, cancel := dbCtx()
	st, err := s.store.StreamByPlaybackID(ctx, rs.Stream)
	cancel()
	if err != nil {
		return
	}
	ctx, cancel = dbCtx()
	s.notifyRelay(ctx, st, rs)
	cancel()
	data := map[string]any{"relay_id": rs.ID, "stream_id": st.ID, "state": rs.State.String(),
		"last_error": rs.LastError, "bytes_sent": rs.BytesSent, "reconnects": rs.Reconnects}
	if !rs.ConnectedSince.IsZero() {
		data["connected_since"] = rs.ConnectedSince.UTC().Format(time.RFC3339)
	}
	s.events.publish(st.UserID, "relay.state", data)
}
