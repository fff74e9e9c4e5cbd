package control

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The event feed: GET /api/events streams, as Server-Sent Events, what happens to the
// caller's streams, relays and recordings. Events go into one bounded in-memory log with
// increasing ids; a client that reconnects with Last-Event-ID (header, or ?last_event_id=)
// gets what it missed if the log still holds it, else an `event: lag` first. A client that
// does not read fast enough is not waited for: its queue overflows, it gets `event: lag`
// and continues with newer events. A `: ping` comment goes out every 15 s.

// Feed limits.
const (
	eventLogSize      = 4096
	eventQueueSize    = 256
	eventPingInterval = 15 * time.Second
)

// feedEvent is one event of the feed.
type feedEvent struct {
	id    uint64
	owner int64 // the user it concerns
	typ   string
	data  []byte // JSON
}

// eventFeed is the log and its live subscribers.
type eventFeed struct {
	mu     sync.Mutex
	log    []feedEvent // ring, oldest first once full
	start  int         // index of the oldest event in log
	nextID uint64
	subs   map[*feedSub]struct{}
}

// feedSub is one connected client.
type feedSub struct {
	owner  int64
	ch     chan feedEvent
	lagged bool // the queue overflowed: send `event: lag` before the next event
}

func (f *eventFeed) init() {
	f.subs = make(map[*feedSub]struct{})
	f.nextID = 1
}

// publish appends an event for owner and hands it to the owner's subscribers without
// waiting for any.
func (f *eventFeed) publish(owner int64, typ string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := feedEvent{id: f.nextID, owner: owner, typ: typ, data: b}
	f.nextID++
	if len(f.log) < eventLogSize {
		f.log = append(f.log, ev)
	} else {
		f.log[f.start] = ev
		f.start = (f.start + 1) % eventLogSize
	}
	for sub := range f.subs {
		if sub.owner != owner {
			continue
		}
		select {
		case sub.ch <- ev:
		default:
			sub.lagged = true
		}
	}
}

// subscribe registers a client of owner and returns the events after lastID still in the
// log, and whether some after lastID are gone (the client lags).
func (f *eventFeed) subscribe(owner int64, lastID uint64, resume bool) (*feedSub, []feedEvent, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub := &feedSub{owner: owner, ch: make(chan feedEvent, eventQueueSize)}
	f.subs[sub] = struct{}{}
	if !resume {
		return sub, nil, false
	}
	var missed []feedEvent
	lost := false
	n := len(f.log)
	if n > 0 && f.log[f.start].id > lastID+1 {
		lost = true
	}
	for i := 0; i < n; i++ {
		ev := f.log[(f.start+i)%n]
		if ev.id > lastID && ev.owner == owner {
			missed = append(missed, ev)
		}
	}
	return sub, missed, lost
}

func (f *eventFeed) unsubscribe(sub *feedSub) {
	f.mu.Lock()
	delete(f.subs, sub)
	f.mu.Unlock()
}

// takeLag reports and clears sub's overflow mark.
func (f *eventFeed) takeLag(sub *feedSub) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := sub.lagged
	sub.lagged = false
	return l
}

// handleEvents answers GET /api/events.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, p *principal) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return errorf(http.StatusInternalServerError, "streaming unsupported")
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	var lastID uint64
	resume := last != ""
	if resume {
		id, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, "Last-Event-ID must be an event id")
		}
		lastID = id
	}
	sub, missed, lost := s.events.subscribe(p.User.ID, lastID, resume)
	defer s.events.unsubscribe(sub)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// The write deadline of the server would end the stream: lift it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	fmt.Fprint(w, "retry: 3000\n\n")
	if lost {
		writeLag(w, "events after the given id are no longer kept")
	}
	for _, ev := range missed {
		writeEvent(w, ev)
	}
	fl.Flush()

	ping := time.NewTicker(eventPingInterval)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.stop:
			return nil
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return nil
			}
		case ev := <-sub.ch:
			if s.events.takeLag(sub) {
				writeLag(w, "the client did not keep up; some events were dropped")
			}
			if err := writeEvent(w, ev); err != nil {
				return nil
			}
			// Send what is queued in one flush. The queue may have overflowed meanwhile: the
			// lag notice goes out at once, not with the next event.
			for drained := false; !drained; {
				if s.events.takeLag(sub) {
					writeLag(w, "the client did not keep up; some events were dropped")
				}
				select {
				case ev := <-sub.ch:
					if err := writeEvent(w, ev); err != nil {
						return nil
					}
				default:
					drained = true
				}
			}
		}
		fl.Flush()
		if s.events.takeLag(sub) { // overflowed while the flush was blocked
			writeLag(w, "the client did not keep up; some events were dropped")
			fl.Flush()
		}
	}
}

func writeEvent(w http.ResponseWriter, ev feedEvent) error {
	_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.id, ev.typ, ev.data)
	return err
}

func writeLag(w http.ResponseWriter, why string) {
	b, _ := json.Marshal(map[string]string{"message": why})
	fmt.Fprintf(w, "event: lag\ndata: %s\n\n", b)
}
