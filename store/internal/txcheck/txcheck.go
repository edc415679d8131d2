// Package txcheck holds the checks each store driver's Tx makes of a key,
// and of a write, before it reaches its backend, so that every driver
// refuses the same requests with the same store errors.
package txcheck

import "github.com/portaldist/portal/store"

// Key refuses an empty key or one longer than store.MaxKeySize
// (store.ErrTooLarge).
func Key(key []byte) error {
	if len(key) == 0 || len(key) > store.MaxKeySize {
		return store.ErrTooLarge
	}
	return nil
}

// Delete refuses a delete in a read-only transaction (store.ErrReadOnly)
// or of a bad key (Key).
func Delete(writable bool, key []byte) error {
	if !writable {
		return store.ErrReadOnly
	}
	return Key(key)
}

// Put refuses what Delete does, and a value longer than
// store.MaxValueSize (store.ErrTooLarge).
func Put(writable bool, key, value []byte) error {
	if err := Delete(writable, key); err != nil {
		return err
	}
	if len(value) > store.MaxValueSize {
		return store.ErrTooLarge
	}
	return nil
}
