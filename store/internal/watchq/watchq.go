// Package watchq is the event queue behind each store driver's Watch: the
// driver pushes events without ever blocking, and one goroutine per watch
// hands them to the watcher's channel in order. A watcher that falls more
// than the queue's bound behind gets one store.EventReset instead of the
// events it missed, and must reload what it holds after receiving it.
package watchq

import (
	"context"
	"sync"

	"github.com/portaldist/portal/store"
)

// Queue is one watch's queue. Push, Reset and Wake may be called from any
// goroutine; Run is called once.
type Queue struct {
	max  int
	wake chan struct{} // capacity 1: the queue may have grown

	mu       sync.Mutex
	events   []store.Event
	dropping bool   // a Reset replaced the rest of revision dropped
	dropped  uint64 // valid when dropping
}

// New returns a queue that holds at most max events before it is replaced
// by a Reset.
func New(max int) *Queue {
	return &Queue{max: max, wake: make(chan struct{}, 1)}
}

// Push queues one event; the caller calls Wake once it has pushed what it
// has. When the queue is full, everything queued, and the rest of the
// event's revision, is replaced by one Reset at that revision: the watcher
// reloads after receiving it, which is after the revision committed.
func (q *Queue) Push(ev store.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropping && ev.Rev == q.dropped {
		return
	}
	if len(q.events) >= q.max {
		q.replace(ev.Rev)
		return
	}
	q.events = append(q.events, ev)
}

// Reset replaces the queue by one Reset at rev, and wakes Run.
func (q *Queue) Reset(rev uint64) {
	q.mu.Lock()
	q.replace(rev)
	q.mu.Unlock()
	q.Wake()
}

// replace needs q.mu.
func (q *Queue) replace(rev uint64) {
	clear(q.events)
	q.events = append(q.events[:0], store.Event{Type: store.EventReset, Rev: rev})
	q.dropping, q.dropped = true, rev
}

// Wake tells Run that the queue may have grown.
func (q *Queue) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run delivers the queue on out until ctx ends or stop closes (a nil stop
// never does).
func (q *Queue) Run(ctx context.Context, out chan<- store.Event, stop <-chan struct{}) {
	for {
		q.mu.Lock()
		var (
			ev   store.Event
			have = len(q.events) > 0
		)
		if have {
			ev = q.events[0]
			q.events[0] = store.Event{}
			q.events = q.events[1:]
			if len(q.events) == 0 {
				q.events = q.events[:0:0] // let the drained array go
			}
		}
		q.mu.Unlock()
		if !have {
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			case <-stop:
				return
			}
		}
		select {
		case out <- ev:
		case <-ctx.Done():
			return
		case <-stop:
			return
		}
	}
}
