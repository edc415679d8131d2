package store

import (
	"encoding/json"
	"fmt"
)

// PutJSON stores v, encoded as JSON, under key. Most domain records are
// JSON documents; the packages that own them choose keys and types.
func PutJSON(tx Tx, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %q: %w", key, err)
	}
	return tx.Put(key, b)
}

// GetJSON decodes the JSON document under key into v. A missing key is
// ErrNotFound.
func GetJSON(tx Tx, key []byte, v any) error {
	b, err := tx.Get(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("store: decode %q: %w", key, err)
	}
	return nil
}
