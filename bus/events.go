package bus

import (
	"slices"
	"sync"
	"time"
)

// EventType says what happened to a stream.
type EventType int

// Event types. The zero value is EventUnknown.
const (
	EventUnknown EventType = iota
	// EventLive: a publisher started (Resumed: it came back within the grace period).
	EventLive
	// EventTracksChanged: the publisher installed new codec parameters.
	EventTracksChanged
	// EventIdle: the publisher left; the grace period started.
	EventIdle
	// EventEnded: the stream ended (grace ran out, or the hub closed).
	EventEnded
)

var eventNames = [...]string{"unknown", "live", "tracks_changed", "idle", "ended"}

// String returns the event type's name.
func (t EventType) String() string {
	if t < 0 || int(t) >= len(eventNames) {
		return "unknown"
	}
	return eventNames[t]
}

// Event is delivered to Hub.Watch callbacks.
type Event struct {
	Type    EventType
	Stream  *Stream
	Resumed bool
	Time    time.Time
}

// events is an unbounded ordered queue drained by one goroutine, so that whoever emits an
// event never waits for the watchers.
type events struct {
	mu       sync.Mutex
	cond     *sync.Cond
	queue    []Event
	watchers map[int]func(Event)
	nextID   int
	closed   bool
	done     chan struct{}
}

func (e *events) start() {
	e.cond = sync.NewCond(&e.mu)
	e.watchers = make(map[int]func(Event))
	e.done = make(chan struct{})
	go e.run()
}

func (e *events) emit(ev Event) {
	e.mu.Lock()
	if !e.closed {
		e.queue = append(e.queue, ev)
		e.cond.Signal()
	}
	e.mu.Unlock()
}

func (e *events) watch(fn func(Event)) func() {
	e.mu.Lock()
	id := e.nextID
	e.nextID++
	e.watchers[id] = fn
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(e.watchers, id)
		e.mu.Unlock()
	}
}

func (e *events) run() {
	defer close(e.done)
	for {
		e.mu.Lock()
		for len(e.queue) == 0 && !e.closed {
			e.cond.Wait()
		}
		if len(e.queue) == 0 && e.closed {
			e.mu.Unlock()
			return
		}
		ev := e.queue[0]
		e.queue[0] = Event{}
		e.queue = e.queue[1:]
		ids := make([]int, 0, len(e.watchers))
		for id := range e.watchers {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		fns := make([]func(Event), 0, len(ids))
		for _, id := range ids {
			fns = append(fns, e.watchers[id])
		}
		e.mu.Unlock()
		for _, fn := range fns {
			fn(ev)
		}
	}
}

func (e *events) close() {
	e.mu.Lock()
	e.closed = true
	e.cond.Broadcast()
	e.mu.Unlock()
	<-e.done
}
