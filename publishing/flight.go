package publishing

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/portaldist/portal/releases"
)

// flights runs at most one verification per artifact at a time: a Complete
// of an artifact that another call is already verifying waits for that
// call's result instead of reading the object again (what
// golang.org/x/sync/singleflight does, plus a shared context: the work goes
// on while any caller still waits, and is cancelled when the last one
// leaves).
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done    chan struct{}
	a       releases.Artifact
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do returns fn's result for key, running fn on its own goroutine unless a
// call for key is under way, in which case it waits for that one. fn's
// context keeps ctx's values but not its cancellation: it is cancelled
// when every caller waiting for the result has given up. A caller whose ctx
// ends first gets ctx's error.
func (f *flights) do(ctx context.Context, key string, fn func(context.Context) (releases.Artifact, error)) (releases.Artifact, error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	fl, ok := f.m[key]
	if !ok {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		fl = &flight{done: make(chan struct{}), cancel: cancel}
		f.m[key] = fl
		go func() {
			a, err := fn(fctx)
			f.mu.Lock()
			if f.m[key] == fl {
				delete(f.m, key)
			}
			fl.a, fl.err = a, err
			f.mu.Unlock()
			cancel()
			close(fl.done)
		}()
	}
	fl.waiters++
	f.mu.Unlock()

	select {
	case <-fl.done:
		a := fl.a
		// Each caller gets its own map: callers may modify their result.
		a.Signatures = maps.Clone(a.Signatures)
		return a, fl.err
	case <-ctx.Done():
		f.mu.Lock()
		fl.waiters--
		if fl.waiters == 0 {
			fl.cancel()
			// A caller arriving now starts afresh instead of joining
			// cancelled work.
			if f.m[key] == fl {
				delete(f.m, key)
			}
		}
		f.mu.Unlock()
		return releases.Artifact{}, ctx.Err()
	}
}

// waiters returns how many callers wait for key's result (tests).
func (f *flights) waiters(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		return fl.waiters
	}
	return 0
}

// slots bounds the verifications that read objects at once.
type slots struct {
	c      chan struct{}
	queued atomic.Int32
}

func newSlots(n int) *slots { return &slots{c: make(chan struct{}, n)} }

// acquire takes a slot, waiting while all are taken, until ctx ends.
func (s *slots) acquire(ctx context.Context) error {
	select {
	case s.c <- struct{}{}:
		return nil
	default:
	}
	s.queued.Add(1)
	defer s.queued.Add(-1)
	select {
	case s.c <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slots) release() { <-s.c }

// completeWaiters returns how many Completes wait for the artifact's
// verification (tests).
func (s *Service) completeWaiters(product, version, filename string) int {
	return s.flights.waiters(product + "\x00" + version + "\x00" + filename)
}

// completesQueued returns how many verifications wait for a slot (tests).
func (s *Service) completesQueued() int { return int(s.slots.queued.Load()) }
