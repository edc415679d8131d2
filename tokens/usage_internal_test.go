package tokens

import (
	"testing"
	"time"
)

// BenchmarkNoteUse is what usage tracking adds to each Authenticate: a
// clock read and noteUse on an already known token.
func BenchmarkNoteUse(b *testing.B) {
	s := &Service{now: time.Now}
	ids := []string{"0123456789abcdef", "fedcba9876543210", "00112233445566ff"}
	for _, id := range ids {
		s.noteUse(id, nil, s.now())
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.noteUse(ids[i%len(ids)], nil, s.now())
			i++
		}
	})
}
