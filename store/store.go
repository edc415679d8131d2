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
)

// ErrNotFound is returned by Tx.Get for a missing key.
var ErrNotFound = errors.New("store: key not found")

// ErrLocked is returned by a driver's Open when another process holds the
// database (for example a running server while `portal token create` runs).
var ErrLocked = errors.New("store: database is held by another process")

// DB is a transactional key-value store.
//
// View runs fn in a read-only snapshot: it sees every Update committed before
// it started and nothing committed later. Update runs fn in a serializable
// read-write transaction; fn's writes commit together when it returns nil and
// are discarded entirely when it returns an error or panics. Transactions are
// not safe for use by more than one goroutine and must not outlive fn: do no
// network or storage I/O inside one, and copy out what you need.
type DB interface {
	View(ctx context.Context, fn func(Tx) error) error
	Update(ctx context.Context, fn func(Tx) error) error
	// Batch is Update for high-rate small writes: concurrent calls may be
	// coalesced into one transaction, and fn may therefore run more than once,
	// so it must be idempotent.
	Batch(ctx context.Context, fn func(Tx) error) error
	// Ping reports whether the store is usable.
	Ping(ctx context.Context) error
	Close() error
}

// Tx is one transaction. Writes are refused inside View with ErrReadOnly.
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
