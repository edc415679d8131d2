package etcd

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/internal/watchq"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watcher is one DB.Watch: pump moves the etcd watch into queue (never
// blocking), queue.Run moves it onto out.
type watcher struct {
	db    *DB
	key   string // the etcd key prefix watched
	out   chan store.Event
	queue *watchq.Queue

	// seen is the revision up to which every change is queued (events and
	// progress notifications); heard is when etcd last answered
	// (UnixNano). Both for Status.
	seen  atomic.Int64
	heard atomic.Int64
}

// Watch implements store.DB.Watch; see the package comment.
func (d *DB) Watch(ctx context.Context, prefix []byte) (<-chan store.Event, error) {
	if d.closed.Load() {
		return nil, store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watcher{
		db:    d,
		key:   d.data + string(prefix),
		out:   make(chan store.Event),
		queue: watchq.New(d.watchBuf),
	}
	// The watch starts after the revision current now: every Update that
	// returns after Watch does is reported.
	resp, err := d.cli.Get(ctx, d.prefix+"ping", clientv3.WithCountOnly())
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if d.closed.Load() {
			return nil, store.ErrClosed
		}
		return nil, err
	}
	w.seen.Store(resp.Header.Revision)
	w.heard.Store(time.Now().UnixNano())
	d.watchMu.Lock()
	if d.watchers == nil {
		d.watchMu.Unlock()
		return nil, store.ErrClosed
	}
	d.watchers[w] = struct{}{}
	d.watchMu.Unlock()

	wctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-d.done:
			cancel()
		case <-wctx.Done():
		}
	}()
	go w.pump(wctx, resp.Header.Revision+1)
	go func() {
		defer close(w.out)
		defer cancel()
		w.queue.Run(wctx, w.out, nil)
		d.watchMu.Lock()
		delete(d.watchers, w) // a no-op after Close, which set watchers to nil
		d.watchMu.Unlock()
	}()
	return w.out, nil
}

// pump watches etcd from revision next until ctx ends, starting a new etcd
// watch whenever one ends.
func (w *watcher) pump(ctx context.Context, next int64) {
	retry := 0
	for ctx.Err() == nil {
		// WithRequireLeader ends the watch when its member loses the
		// cluster, instead of leaving it silent on a partitioned member.
		wch := w.db.cli.Watch(clientv3.WithRequireLeader(ctx), w.key, clientv3.WithPrefix(),
			clientv3.WithRev(next), clientv3.WithProgressNotify())
		for resp := range wch {
			w.heard.Store(time.Now().UnixNano())
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				// What the watcher missed is gone: it must reload what
				// it holds, as of now or later.
				now := max(resp.Header.Revision, resp.CompactRevision)
				if cur, err := w.db.cli.Get(ctx, w.db.prefix+"ping", clientv3.WithCountOnly()); err == nil {
					now = max(now, cur.Header.Revision)
				}
				w.queue.Reset(uint64(now))
				next = now + 1
				w.seen.Store(now)
				break
			}
			if resp.Err() != nil {
				break
			}
			retry = 0
			for _, ev := range resp.Events {
				rev := ev.Kv.ModRevision
				typ := store.EventPut
				if ev.Type == mvccpb.DELETE {
					typ = store.EventDelete
				} else if len(ev.Kv.Value) > 0 && ev.Kv.Value[0] == tagTombstone {
					typ = store.EventDelete
				}
				w.queue.Push(store.Event{Type: typ, Key: ev.Kv.Key[len(w.db.data):], Rev: uint64(rev)})
				next = rev + 1
			}
			if len(resp.Events) > 0 {
				w.queue.Wake()
			}
			// A progress notice says every change up to its revision
			// has been sent. (Not the watch's creation notice: events
			// between the start revision and its header's come after
			// it.)
			if resp.IsProgressNotify() {
				next = max(next, resp.Header.Revision+1)
			}
			w.seen.Store(next - 1)
		}
		if ctx.Err() != nil {
			return
		}
		// The watch ended (no leader, member gone): start again from the
		// next revision, after a pause that grows while it keeps failing.
		retry++
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(retry)*100*time.Millisecond, 2*time.Second)):
		}
	}
}
