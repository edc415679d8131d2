package links

import "time"

// SetCacheTTL changes how long s serves link records from memory, so that
// a test can tell the watch's evictions from the expiry.
func SetCacheTTL(s *Service, ttl time.Duration) { s.records.SetTTL(ttl) }
