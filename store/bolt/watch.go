package bolt

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/portaldist/portal/store"
)

// watcher is one DB.Watch. publish appends to queue (never blocking);
// run moves the queue onto out.
type watcher struct {
	prefix string
	max    int
	out    chan store.Event
	wake   chan struct{} // capacity 1: queue may have grown
	stop   chan struct{} // closed by DB.Close

	mu    sync.Mutex
	queue []store.Event
}

// Watch implements store.DB.Watch; see the package comment for how events
// are buffered. The watch starts before Watch returns: every Update that
// returns after that is reported.
func (d *DB) Watch(ctx context.Context, prefix []byte) (<-chan store.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watcher{
		prefix: string(prefix),
		max:    d.watchBuf,
		out:    make(chan store.Event),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	d.watchMu.Lock()
	if d.closed {
		d.watchMu.Unlock()
		return nil, store.ErrClosed
	}
	d.watchers[w] = struct{}{}
	d.watchMu.Unlock()
	go func() {
		defer close(w.out)
		w.run(ctx)
		d.watchMu.Lock()
		delete(d.watchers, w) // a no-op after Close, which set watchers to nil
		d.watchMu.Unlock()
	}()
	return w.out, nil
}

// publish queues the committed writes of the transaction rev for every
// watcher they concern. The caller holds commitMu, so transactions are
// queued in commit order.
func (d *DB) publish(rev uint64, writes map[string]store.EventType) {
	if len(writes) == 0 {
		return
	}
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	if len(d.watchers) == 0 {
		return
	}
	keys := make([]string, 0, len(writes))
	for k := range writes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for w := range d.watchers {
		w.push(rev, keys, writes)
	}
}

// push queues the events of one transaction that match w's prefix. When the
// queue is full, everything queued, and the rest of this transaction, is
// replaced by one Reset at rev: the watcher reloads after receiving it,
// which is after this transaction committed.
func (w *watcher) push(rev uint64, keys []string, writes map[string]store.EventType) {
	w.mu.Lock()
	defer w.mu.Unlock()
	matched := false
	for _, k := range keys {
		if !strings.HasPrefix(k, w.prefix) {
			continue
		}
		matched = true
		if len(w.queue) >= w.max {
			clear(w.queue)
			w.queue = append(w.queue[:0], store.Event{Type: store.EventReset, Rev: rev})
			break
		}
		w.queue = append(w.queue, store.Event{Type: writes[k], Key: []byte(k), Rev: rev})
	}
	if matched {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// run delivers the queue until ctx ends or the DB closes.
func (w *watcher) run(ctx context.Context) {
	for {
		w.mu.Lock()
		var (
			ev   store.Event
			have = len(w.queue) > 0
		)
		if have {
			ev = w.queue[0]
			w.queue[0] = store.Event{}
			w.queue = w.queue[1:]
			if len(w.queue) == 0 {
				w.queue = w.queue[:0:0] // let the drained array go
			}
		}
		w.mu.Unlock()
		if !have {
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			}
		}
		select {
		case w.out <- ev:
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		}
	}
}
