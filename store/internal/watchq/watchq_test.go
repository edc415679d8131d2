package watchq

import (
	"context"
	"testing"
	"time"

	"github.com/portaldist/portal/store"
)

func put(key string, rev uint64) store.Event {
	return store.Event{Type: store.EventPut, Key: []byte(key), Rev: rev}
}

// drain runs q until it has delivered n events.
func drain(t *testing.T, q *Queue, n int) []store.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan store.Event)
	go q.Run(ctx, out, nil)
	var got []store.Event
	for range n {
		select {
		case ev := <-out:
			got = append(got, ev)
		case <-ctx.Done():
			t.Fatalf("delivered %d of %d events: %+v", len(got), n, got)
		}
	}
	return got
}

func TestQueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		fill func(q *Queue)
		want []store.Event
	}{
		{"in order", 3, func(q *Queue) {
			q.Push(put("a", 1))
			q.Push(put("b", 1))
			q.Push(put("c", 2))
		}, []store.Event{put("a", 1), put("b", 1), put("c", 2)}},
		{"overflow replaces the queue and the rest of its revision", 2, func(q *Queue) {
			q.Push(put("a", 1))
			q.Push(put("b", 2))
			q.Push(put("c", 2)) // full: one Reset at 2
			q.Push(put("d", 2)) // rest of revision 2: dropped
			q.Push(put("e", 3))
		}, []store.Event{{Type: store.EventReset, Rev: 2}, put("e", 3)}},
		{"Reset", 8, func(q *Queue) {
			q.Push(put("a", 5))
			q.Reset(7)
			q.Push(put("b", 7))
			q.Push(put("c", 8))
		}, []store.Event{{Type: store.EventReset, Rev: 7}, put("c", 8)}},
		{"revision 0 is not dropped before any Reset", 4, func(q *Queue) {
			q.Push(put("a", 0))
		}, []store.Event{put("a", 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := New(tc.max)
			tc.fill(q)
			q.Wake()
			got := drain(t, q, len(tc.want))
			for i := range tc.want {
				if got[i].Type != tc.want[i].Type || string(got[i].Key) != string(tc.want[i].Key) || got[i].Rev != tc.want[i].Rev {
					t.Fatalf("event %d = %+v, want %+v (all: %+v)", i, got[i], tc.want[i], got)
				}
			}
		})
	}
}

// TestRunStops: Run returns when stop closes, as when a driver closes.
func TestRunStops(t *testing.T) {
	q := New(1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { q.Run(context.Background(), make(chan store.Event), stop); close(done) }()
	q.Push(put("a", 1)) // never received: Run waits on out
	q.Wake()
	close(stop)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after stop closed")
	}
}
