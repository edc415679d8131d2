package audit

import "time"

// SetClock replaces Write's clock until the returned function restores it.
// Tests that use it must not run in parallel.
func SetClock(f func() time.Time) (restore func()) {
	old := now
	now = f
	return func() { now = old }
}

// RecordPrefix is the key prefix of the records, for tests that read the
// stored bytes.
const RecordPrefix = recordPrefix
