package bolt

import (
	"context"
	"slices"
	"strings"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/internal/watchq"
)

// watcher is one DB.Watch. publish appends to queue (never blocking);
// queue.Run moves it onto out.
type watcher struct {
	prefix string
	out    chan store.Event
	stop   chan struct{} // closed by DB.Close
	queue  *watchq.Queue
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
		out:    make(chan store.Event),
		stop:   make(chan struct{}),
		queue:  watchq.New(d.watchBuf),
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
		w.queue.Run(ctx, w.out, w.stop)
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
	matched := false
	for _, k := range keys {
		if !strings.HasPrefix(k, w.prefix) {
			continue
		}
		matched = true
		w.queue.Push(store.Event{Type: writes[k], Key: []byte(k), Rev: rev})
	}
	if matched {
		w.queue.Wake()
	}
}
