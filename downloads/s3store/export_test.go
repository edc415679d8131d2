package s3store

// SlowGetReason is "" when s presigns GETs on the fast path, else why not.
func SlowGetReason(s *Store) string {
	if s.fast == nil {
		return s.slowWhy
	}
	return ""
}

// DisableFastGet makes s presign GETs through the SDK presigner (the
// fallback), for comparisons and benchmarks.
func DisableFastGet(s *Store) { s.fast, s.slowWhy = nil, "disabled by a test" }
