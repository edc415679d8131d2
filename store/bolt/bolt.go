// Package bolt is the store driver on a bbolt file: the embedded default.
//
// bbolt holds an exclusive file lock while the database is open, so a second
// process (say, `portal token create` while `portal serve` runs) gets
// store.ErrLocked after a short wait instead of hanging.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/portaldist/portal/store"
	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	kvBucket  = []byte("kv")
	seqBucket = []byte("seq")
)

// DB is a store.DB on one bbolt file. It is safe for concurrent use.
type DB struct {
	db *bbolt.DB
}

// Options tune Open.
type Options struct {
	// LockTimeout is how long Open waits for another process's lock before
	// returning store.ErrLocked. Zero means one second.
	LockTimeout time.Duration
	// NoSync skips fsync on commit; only for benchmarks and seeding.
	NoSync bool
}

// Open opens or creates the database file at path (mode 0600, parent
// directories 0700).
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
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
	return &DB{db: db}, nil
}

func (d *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.View(func(tx *bbolt.Tx) error { return fn(&boltTx{tx: tx}) })
}

func (d *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.Update(func(tx *bbolt.Tx) error { return fn(&boltTx{tx: tx, writable: true}) })
}

func (d *DB) Batch(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.Batch(func(tx *bbolt.Tx) error { return fn(&boltTx{tx: tx, writable: true}) })
}

func (d *DB) Ping(ctx context.Context) error {
	return d.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(kvBucket) == nil {
			return errors.New("store: kv bucket missing")
		}
		return nil
	})
}

func (d *DB) Close() error { return d.db.Close() }

type boltTx struct {
	tx       *bbolt.Tx
	writable bool
}

func checkKey(key []byte) error {
	if len(key) == 0 || len(key) > store.MaxKeySize {
		return store.ErrTooLarge
	}
	return nil
}

func (t *boltTx) Get(key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	v := t.tx.Bucket(kvBucket).Get(key)
	if v == nil {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t *boltTx) Put(key, value []byte) error {
	if !t.writable {
		return store.ErrReadOnly
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if len(value) > store.MaxValueSize {
		return store.ErrTooLarge
	}
	if value == nil {
		value = []byte{}
	}
	return t.tx.Bucket(kvBucket).Put(key, value)
}

func (t *boltTx) Delete(key []byte) error {
	if !t.writable {
		return store.ErrReadOnly
	}
	if err := checkKey(key); err != nil {
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
	b, err := t.tx.Bucket(seqBucket).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return 0, err
	}
	return b.NextSequence()
}
