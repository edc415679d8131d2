// Package store is the portal's transactional key-value contract. Domain
// packages own their key layout and value encoding on top of it; nothing here
// knows about products, licenses or downloads, and nothing of a particular
// database leaks through it, so an etcd driver can satisfy the same contract.
//
// The keyspace is flat and ordered bytewise. Keys are at most MaxKeySize
// bytes; values at most MaxValueSize bytes.
package store

import (
	"context"
	"errors"
)

const (
	MaxKeySize   = 1024
	MaxValueSize = 1 << 20

	// MaxTxnOps is the portable limit of keys one Update may write: every
	// driver allows at least this many (DB.MaxTxnOps says how many a given
	// store allows). Put and Delete count once per distinct key, and
	// NextSequence once per distinct sequence name, however often each is
	// called. It is etcd's default limit of operations per transaction
	// (--max-txn-ops). Code that writes a bounded handful of keys per
	// Update needs nothing more; code that writes an unbounded number
	// splits the work into transactions of at most this many (or of
	// DB.MaxTxnOps, for a high-rate writer that wants as few commits as the
	// store allows) and says what a failure between them leaves behind.
	MaxTxnOps = 128
)

// ErrNotFound is returned by Tx.Get for a missing key.
var ErrNotFound = errors.New("store: key not found")

// ErrLocked is returned by a driver's Open when another process holds the
// database (for example a running server while `portal token create` runs).
var ErrLocked = errors.New("store: database is held by another process")

// ErrTxnTooLarge is returned by Tx.Put, Tx.Delete and Tx.NextSequence when
// the write would make the transaction write more than DB.MaxTxnOps keys. The
// Update that got it fails with it (wrapped) and commits nothing, even when
// fn ignores the error and returns nil.
var ErrTxnTooLarge = errors.New("store: transaction writes more than MaxTxnOps keys")

// ErrClosed is returned by Watch on a closed database.
var ErrClosed = errors.New("store: database is closed")

// DB is a transactional key-value store. It is safe for concurrent use.
//
// View runs fn in a read-only snapshot: it sees every Update committed before
// it started and nothing committed later.
//
// Update runs fn in a serializable read-write transaction; fn's writes
// commit together when it returns nil and are discarded entirely when it
// returns an error or panics. A driver may run fn more than once before it
// commits (etcd retries a transaction whose reads changed before it could
// commit; only the last run's writes are kept), so fn must have no effect
// outside the transaction: no I/O, no sends, no changes to shared state. It
// may set the caller's local variables, but must assign every one of them
// on every run, never append to or count up what a previous run left. An
// Update writes at most MaxTxnOps() keys, never fewer than the package's
// MaxTxnOps (see ErrTxnTooLarge).
//
// ctx bounds the whole transaction: when it ends before the commit, the
// transaction is rolled back and View or Update returns ctx.Err() (wrapped
// or not). An Update whose ctx ends while it commits may have committed.
//
// Transactions are not safe for use by more than one goroutine and must not
// outlive fn: do no network or storage I/O inside one, and copy out what you
// need.
type DB interface {
	View(ctx context.Context, fn func(Tx) error) error
	Update(ctx context.Context, fn func(Tx) error) error
	// MaxTxnOps is the most keys one Update may write on this store: at
	// least the package's MaxTxnOps (etcd's default), more where the
	// driver allows (bbolt).
	MaxTxnOps() int
	// Watch reports, in commit order, the changes committed to keys with
	// the prefix ("" watches everything) from the moment Watch returns
	// until ctx ends or the database is closed; then the channel is closed.
	// Every Event is delivered after its transaction committed: a View
	// started after receiving it sees the change (or a later one).
	// Rolled-back transactions report nothing.
	//
	// Delivery never holds up a writer. A driver buffers a bounded number of
	// events for each watcher; when a watcher falls that far behind (or the
	// driver loses track of the changes some other way, as an etcd watch
	// does when its revision is compacted) the undelivered events are
	// dropped and the watcher receives one Event of type Reset instead, then
	// the events committed after it. A watcher that gets a Reset must treat
	// everything under its prefix as changed: reload it, or drop every copy
	// it holds. Events queued when the watch ends are discarded.
	//
	// The receiver must keep reading until the channel is closed, or cancel
	// ctx; a watch nobody reads costs only its bounded buffer.
	Watch(ctx context.Context, prefix []byte) (<-chan Event, error)
	// Ping reports whether the store is usable.
	Ping(ctx context.Context) error
	// Close releases the database and ends every watch. Calling it more
	// than once is harmless.
	Close() error
}

// EventType says what an Event reports.
type EventType uint8

const (
	// EventPut: the key was written (created or replaced).
	EventPut EventType = iota + 1
	// EventDelete: the key was deleted. A driver may report it for a key
	// that did not exist.
	EventDelete
	// EventReset: changes were lost (see DB.Watch); Key is nil.
	EventReset
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventReset:
		return "reset"
	}
	return "unknown"
}

// Event is one change reported by DB.Watch.
type Event struct {
	Type EventType
	// Key is the changed key, owned by the receiver; nil for EventReset.
	Key []byte
	// Rev is the revision of the transaction that committed the change:
	// every committed Update gets a higher one than the Updates committed
	// before it, and all the events of one transaction share it (in no
	// particular order among themselves; each key appears once, with its
	// last write). For a Reset it is the newest revision the watcher may
	// have missed. Revisions are the driver's (bbolt's transaction ID,
	// etcd's revision): compare them, do not do arithmetic on them.
	Rev uint64
}

// Tx is one transaction. Writes are refused inside View with ErrReadOnly,
// and beyond MaxTxnOps distinct keys inside Update with ErrTxnTooLarge.
type Tx interface {
	// Get returns a copy of the value of key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	Put(key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key []byte) error
	// Scan calls fn for each key with the prefix, in bytewise key order (or
	// reverse order), starting strictly after opts.After when it is set (and,
	// in reverse, strictly before it). k and v are valid only during the call
	// and must be copied to be kept. Returning false from fn stops the scan.
	Scan(prefix []byte, opts ScanOptions, fn func(k, v []byte) (bool, error)) error
	// NextSequence returns the next value (starting at 1) of the named
	// monotonically increasing counter. It is part of the transaction: a
	// rolled-back transaction does not consume a value that a later committed
	// one could not reuse, but callers must not rely on there being no gaps.
	// Each distinct name counts as one key against MaxTxnOps (an etcd
	// driver keeps the counter in a key).
	NextSequence(name string) (uint64, error)
}

// ScanOptions tune a Scan.
type ScanOptions struct {
	After   []byte // exclusive start (a full key, as a cursor)
	Reverse bool
}

// ErrReadOnly is returned by writes inside View.
var ErrReadOnly = errors.New("store: write in a read-only transaction")

// ErrTooLarge is returned for a key or value above the size limits.
var ErrTooLarge = errors.New("store: key or value too large")

// PrefixEnd returns the smallest key greater than every key with the prefix,
// or nil when there is none (a prefix of only 0xff bytes).
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// SequenceTx is implemented by the transactions of drivers that let a whole
// store be backed up and copied with its counters (the bbolt driver's do):
// keys built from NextSequence (the ledger's grants, webhook deliveries)
// would be overwritten by a copy whose counters started again at 1.
type SequenceTx interface {
	// Sequences calls fn for every named counter that has handed out a
	// value, in name order, with the last value handed out. It works in
	// View and in Update.
	Sequences(fn func(name string, last uint64) error) error
	// RaiseSequence makes the next NextSequence(name) return more than
	// last; a counter already at or past last is left alone. Update only;
	// it counts against MaxTxnOps as NextSequence(name) does.
	RaiseSequence(name string, last uint64) error
}

// ErrNoSequences is returned by Sequences for a driver whose transactions
// do not implement SequenceTx.
var ErrNoSequences = errors.New("store: this driver does not expose its sequences")

// Sequences calls fn for every named counter of tx (see SequenceTx), or
// returns ErrNoSequences when the driver does not tell.
func Sequences(tx Tx, fn func(name string, last uint64) error) error {
	st, ok := tx.(SequenceTx)
	if !ok {
		return ErrNoSequences
	}
	return st.Sequences(fn)
}

// RaiseSequence makes the next tx.NextSequence(name) return more than last:
// through SequenceTx where the driver has it, else by drawing values with
// NextSequence until the counter reaches last (one key against MaxTxnOps
// either way; as many calls as the counter is behind, and at least one, so
// a counter already past last skips a value, a gap NextSequence allows).
func RaiseSequence(tx Tx, name string, last uint64) error {
	if st, ok := tx.(SequenceTx); ok {
		return st.RaiseSequence(name, last)
	}
	for {
		v, err := tx.NextSequence(name)
		if err != nil {
			return err
		}
		if v >= last {
			return nil
		}
	}
}
