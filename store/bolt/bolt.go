// Package bolt is the store driver on a bbolt file: the embedded default.
//
// bbolt holds an exclusive file lock while the database is open, so a second
// process (say, `portal token create` while `portal serve` runs) gets
// store.ErrLocked after a short wait instead of hanging.
//
// # Watches
//
// A bbolt file has one process writing it, so DB.Watch is fed in process:
// after each Update commits, its writes are handed to every watcher whose
// prefix they match, under the same lock that orders the commits, so
// watchers see them in commit order. Handing over never blocks: each
// watcher queues at most Options.WatchBuffer events, and one that falls
// further behind gets its queue replaced by a single store.EventReset. A
// goroutine per watcher delivers the queue on the watcher's channel; it
// ends, closing the channel, when the watch's ctx ends or the DB is closed.
// Event revisions are bbolt transaction IDs, which persist across restarts.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/internal/txcheck"
	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	kvBucket  = []byte("kv")
	seqBucket = []byte("seq")
)

// DB is a store.DB on one bbolt file. It is safe for concurrent use.
type DB struct {
	db        *bbolt.DB
	watchBuf  int
	runTwice  bool
	maxOps    int
	commitMu  sync.Mutex // held from an Update's start until its events are queued
	watchMu   sync.Mutex // guards watchers and closed; taken after commitMu
	watchers  map[*watcher]struct{}
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// Options tune Open.
type Options struct {
	// LockTimeout is how long Open waits for another process's lock before
	// returning store.ErrLocked. Zero means one second.
	LockTimeout time.Duration
	// NoSync skips fsync on commit; only for benchmarks and seeding.
	NoSync bool
	// WatchBuffer is how many events each watcher may have queued before
	// it gets a store.EventReset instead (see the package comment). Zero
	// means DefaultWatchBuffer.
	WatchBuffer int
	// RunUpdatesTwice makes every Update run fn twice, rolling back the
	// first run, as a driver that retries transactions on conflict may. It
	// is for tests of code that calls Update: an fn with effects outside
	// its transaction shows them twice.
	RunUpdatesTwice bool
	// MaxTxnOps is the most keys one Update may write (see
	// store.DB.MaxTxnOps). Zero means DefaultMaxTxnOps; values below
	// store.MaxTxnOps are raised to it. Tests of code that must also run on
	// etcd set store.MaxTxnOps, etcd's default.
	MaxTxnOps int
}

// DefaultMaxTxnOps is the default Options.MaxTxnOps. bbolt has no limit of
// its own; this one bounds how long one transaction holds the writer lock
// and how much it holds in memory, while letting a high-rate writer (the
// download ledger) commit, and fsync, once for thousands of rows.
const DefaultMaxTxnOps = 16384

// DefaultWatchBuffer is the default Options.WatchBuffer.
const DefaultWatchBuffer = 1024

// Open opens or creates the database file at path (mode 0600, parent
// directories 0700).
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.WatchBuffer <= 0 {
		opts.WatchBuffer = DefaultWatchBuffer
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (stop the running portal first, or use the API)", store.ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(kvBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(seqBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: init %s: %w", path, err)
	}
	maxOps := opts.MaxTxnOps
	if maxOps == 0 {
		maxOps = DefaultMaxTxnOps
	}
	maxOps = max(maxOps, store.MaxTxnOps)
	return &DB{db: db, watchBuf: opts.WatchBuffer, runTwice: opts.RunUpdatesTwice, maxOps: maxOps, watchers: make(map[*watcher]struct{})}, nil
}

// View runs fn in a bbolt read transaction. It returns ctx.Err() when ctx
// ends before or while fn runs.
func (d *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.View(func(tx *bbolt.Tx) error {
		if err := fn(&boltTx{tx: tx}); err != nil {
			return err
		}
		return ctx.Err()
	})
}

// errSecondRun rolls back the first run of fn under RunUpdatesTwice.
var errSecondRun = errors.New("store: rolled back to run again")

// Update runs fn in a bbolt write transaction and, once it committed, queues
// its writes for the watchers. Updates are serialized (bbolt allows one
// writer); fn runs once unless Options.RunUpdatesTwice is set.
func (d *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	if d.runTwice {
		err := d.db.Update(func(tx *bbolt.Tx) error {
			if err := runTx(ctx, &boltTx{tx: tx, writable: true, max: d.maxOps}, fn); err != nil {
				return err
			}
			return errSecondRun
		})
		if !errors.Is(err, errSecondRun) {
			return err
		}
	}
	var (
		bt  *boltTx
		rev uint64
	)
	err := d.db.Update(func(tx *bbolt.Tx) error {
		bt = &boltTx{tx: tx, writable: true, max: d.maxOps}
		if err := runTx(ctx, bt, fn); err != nil {
			return err
		}
		rev = uint64(tx.ID())
		return nil
	})
	if err != nil {
		return err
	}
	d.publish(rev, bt.writes)
	return nil
}

// runTx runs fn and decides whether its transaction may commit.
func runTx(ctx context.Context, bt *boltTx, fn func(store.Tx) error) error {
	if err := fn(bt); err != nil {
		return err
	}
	if bt.tooLarge {
		return fmt.Errorf("%w: refused a write beyond %d keys", store.ErrTxnTooLarge, bt.max)
	}
	return ctx.Err()
}

// MaxTxnOps implements store.DB.
func (d *DB) MaxTxnOps() int { return d.maxOps }

func (d *DB) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(kvBucket) == nil {
			return errors.New("store: kv bucket missing")
		}
		return nil
	})
}

// Close ends every watch (closing its channel), waits for open transactions
// to finish and closes the file. Later calls return the first call's result.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.watchMu.Lock()
		d.closed = true
		for w := range d.watchers {
			close(w.stop)
		}
		d.watchers = nil
		d.watchMu.Unlock()
		d.closeErr = d.db.Close()
	})
	return d.closeErr
}

type boltTx struct {
	tx       *bbolt.Tx
	writable bool
	// writes holds the last write of each key (string(key)), seqs the
	// sequences drawn: together at most max.
	max      int
	writes   map[string]store.EventType
	seqs     map[string]struct{}
	tooLarge bool
}

// count records a write of key (or, when seq, of a sequence name) and
// refuses it when it would take the transaction past t.max keys.
func (t *boltTx) count(name string, typ store.EventType, seq bool) error {
	if seq {
		if _, ok := t.seqs[name]; ok {
			return nil
		}
	} else if _, ok := t.writes[name]; ok {
		t.writes[name] = typ
		return nil
	}
	if len(t.writes)+len(t.seqs) >= t.max {
		t.tooLarge = true
		return fmt.Errorf("%w (at most %d)", store.ErrTxnTooLarge, t.max)
	}
	if seq {
		if t.seqs == nil {
			t.seqs = make(map[string]struct{})
		}
		t.seqs[name] = struct{}{}
		return nil
	}
	if t.writes == nil {
		t.writes = make(map[string]store.EventType)
	}
	t.writes[name] = typ
	return nil
}

func (t *boltTx) Get(key []byte) ([]byte, error) {
	if err := txcheck.Key(key); err != nil {
		return nil, err
	}
	v := t.tx.Bucket(kvBucket).Get(key)
	if v == nil {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t *boltTx) Put(key, value []byte) error {
	if err := txcheck.Put(t.writable, key, value); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	if err := t.count(string(key), store.EventPut, false); err != nil {
		return err
	}
	return t.tx.Bucket(kvBucket).Put(key, value)
}

func (t *boltTx) Delete(key []byte) error {
	if err := txcheck.Delete(t.writable, key); err != nil {
		return err
	}
	if err := t.count(string(key), store.EventDelete, false); err != nil {
		return err
	}
	return t.tx.Bucket(kvBucket).Delete(key)
}

func (t *boltTx) Scan(prefix []byte, opts store.ScanOptions, fn func(k, v []byte) (bool, error)) error {
	c := t.tx.Bucket(kvBucket).Cursor()
	var k, v []byte
	if !opts.Reverse {
		start := prefix
		if opts.After != nil && bytes.Compare(opts.After, prefix) >= 0 {
			start = opts.After
		}
		k, v = c.Seek(start)
		if opts.After != nil && k != nil && bytes.Equal(k, opts.After) {
			k, v = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			more, err := fn(k, v)
			if err != nil || !more {
				return err
			}
		}
		return nil
	}
	// Reverse: position on the last key below the upper bound.
	upper := store.PrefixEnd(prefix)
	if opts.After != nil && (upper == nil || bytes.Compare(opts.After, upper) < 0) {
		upper = opts.After
	}
	if upper == nil {
		k, v = c.Last()
	} else {
		k, v = c.Seek(upper)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (t *boltTx) NextSequence(name string) (uint64, error) {
	if !t.writable {
		return 0, store.ErrReadOnly
	}
	if err := t.count(name, 0, true); err != nil {
		return 0, err
	}
	b, err := t.tx.Bucket(seqBucket).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return 0, err
	}
	return b.NextSequence()
}

// Sequences lists the named counters (store.SequenceTx): each is a bucket
// inside the seq bucket, whose bbolt sequence is the last value handed out.
func (t *boltTx) Sequences(fn func(name string, last uint64) error) error {
	seqs := t.tx.Bucket(seqBucket)
	c := seqs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue // not a counter's bucket
		}
		b := seqs.Bucket(k)
		if b == nil || b.Sequence() == 0 {
			continue
		}
		if err := fn(string(k), b.Sequence()); err != nil {
			return err
		}
	}
	return nil
}

// RaiseSequence implements store.SequenceTx.
func (t *boltTx) RaiseSequence(name string, last uint64) error {
	if !t.writable {
		return store.ErrReadOnly
	}
	if err := t.count(name, 0, true); err != nil {
		return err
	}
	b, err := t.tx.Bucket(seqBucket).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return err
	}
	if b.Sequence() >= last {
		return nil
	}
	return b.SetSequence(last)
}
