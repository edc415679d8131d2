//go:build !linux

package bolt

// ReleaseMemory is a no-op on this system (see the Linux version).
func (db *DB) ReleaseMemory() error { return nil }
