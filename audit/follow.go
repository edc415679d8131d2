package audit

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/portaldist/portal/store"
)

// Entry is a record with its key, the position a follower of the log keeps.
type Entry struct {
	Key []byte
	Record
}

// Prefix returns the key prefix of every record, for store.DB.Watch by a
// follower of the log (see After).
func Prefix() []byte { return []byte(recordPrefix) }

// After reads, in tx, up to limit records whose keys follow pos (every
// record from the start when pos is nil), oldest first. It is how a
// follower (the webhook dispatcher) reads the log from the position it keeps
// in the same store, so that the position and what it did with the records
// commit together.
//
// Keys order records by the time Write read its clock, then by sequence.
// Writers that the store serializes (bbolt) therefore commit in key order
// unless the wall clock steps back; a record committed with a key at or
// before a follower's position is not returned by later calls.
func After(tx store.Tx, pos []byte, limit int) ([]Entry, error) {
	if pos != nil && !bytes.HasPrefix(pos, []byte(recordPrefix)) {
		return nil, fmt.Errorf("audit: position %x is not a record key", pos)
	}
	var out []Entry
	err := tx.Scan([]byte(recordPrefix), store.ScanOptions{After: pos}, func(k, v []byte) (bool, error) {
		if len(out) == limit {
			return false, nil
		}
		e := Entry{Key: bytes.Clone(k)}
		if err := json.Unmarshal(v, &e.Record); err != nil {
			return false, fmt.Errorf("audit: decode %x: %w", k, err)
		}
		out = append(out, e)
		return true, nil
	})
	return out, err
}

// Last returns the key of the newest record in tx, nil when the log is
// empty: the position of a follower that starts with what happens next.
func Last(tx store.Tx) ([]byte, error) {
	var last []byte
	err := tx.Scan([]byte(recordPrefix), store.ScanOptions{Reverse: true}, func(k, _ []byte) (bool, error) {
		last = bytes.Clone(k)
		return false, nil
	})
	return last, err
}
