package leader_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal/leader"
)

// waitFor polls cond until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSingleLeadsUntilRunEnds(t *testing.T) {
	s := leader.NewScheduler(leader.Single{}, nil)
	var loops, ticks atomic.Int32
	loopDone := make(chan error, 1)
	s.Loop("loop", func(ctx context.Context) {
		loops.Add(1)
		<-ctx.Done()
		loopDone <- ctx.Err()
	})
	s.Every("tick", 10*time.Millisecond, func(ctx context.Context) error {
		ticks.Add(1)
		return errors.New("logged, and called again")
	})
	if s.Leading() {
		t.Fatal("leading before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	waitFor(t, 5*time.Second, "Every's job called 3 times", func() bool { return ticks.Load() >= 3 })
	if !s.Leading() || s.Terms() != 1 || loops.Load() != 1 {
		t.Fatalf("Leading %v, Terms %d, loop calls %d; want true, 1, 1", s.Leading(), s.Terms(), loops.Load())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its ctx ended")
	}
	// Run returned only after the job did.
	select {
	case err := <-loopDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("job ctx ended with %v", err)
		}
	default:
		t.Fatal("Run returned before its job")
	}
	if s.Leading() {
		t.Fatal("still leading after Run returned")
	}
	n := ticks.Load()
	time.Sleep(30 * time.Millisecond)
	if ticks.Load() != n {
		t.Fatal("Every's job still called after Run returned")
	}
}

func TestSingleCampaignAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (leader.Single{}).Campaign(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Campaign on a done ctx = %v", err)
	}
	term, err := (leader.Single{}).Campaign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-term.Done():
		t.Fatal("a Single term ended by itself")
	default:
	}
	term.Resign(context.Background())
	term.Resign(context.Background()) // harmless
	<-term.Done()
}

// flaky is an Elector whose terms the test ends, and whose campaigns fail
// while failing is set: the Scheduler's reaction to a lost term does not
// depend on which store elects.
type flaky struct {
	mu      sync.Mutex
	failing bool
	terms   []*flakyTerm
	resigns atomic.Int32
}

type flakyTerm struct {
	f    *flaky
	once sync.Once
	done chan struct{}
}

func (t *flakyTerm) Done() <-chan struct{} { return t.done }
func (t *flakyTerm) end()                  { t.once.Do(func() { close(t.done) }) }
func (t *flakyTerm) Resign(context.Context) error {
	t.f.resigns.Add(1)
	t.end()
	return nil
}

func (f *flaky) Campaign(ctx context.Context) (leader.Term, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return nil, errors.New("cluster unreachable")
	}
	t := &flakyTerm{f: f, done: make(chan struct{})}
	f.terms = append(f.terms, t)
	return t, nil
}

func (f *flaky) last() *flakyTerm {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.terms[len(f.terms)-1]
}

func TestLostTermStopsJobsAndCampaignsAgain(t *testing.T) {
	f := &flaky{}
	s := leader.NewScheduler(f, nil)
	s.SetRetry(10 * time.Millisecond)
	var running atomic.Int32
	var starts atomic.Int32
	s.Loop("job", func(ctx context.Context) {
		starts.Add(1)
		running.Add(1)
		defer running.Add(-1)
		<-ctx.Done()
		// A job's last step may take a moment: the term is resigned only
		// after it.
		time.Sleep(20 * time.Millisecond)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	waitFor(t, 5*time.Second, "the first term", s.Leading)

	// The term is lost while campaigns fail: the job stops, the replica
	// does not lead, and it keeps trying.
	f.mu.Lock()
	f.failing = true
	f.mu.Unlock()
	changed := s.Changed()
	f.last().end()
	<-changed
	if s.Leading() {
		t.Fatal("leading after the term ended")
	}
	waitFor(t, 5*time.Second, "the job stopped", func() bool { return running.Load() == 0 })
	if f.resigns.Load() != 1 {
		t.Fatalf("resigns = %d after the lost term; want 1 (after the job returned)", f.resigns.Load())
	}
	time.Sleep(50 * time.Millisecond)
	if s.Leading() || starts.Load() != 1 {
		t.Fatalf("while campaigns fail: Leading %v, job started %d times", s.Leading(), starts.Load())
	}

	// The cluster answers again: a new term, and the job runs again.
	f.mu.Lock()
	f.failing = false
	f.mu.Unlock()
	waitFor(t, 5*time.Second, "the second term", func() bool { return s.Leading() && starts.Load() == 2 })
	if s.Terms() != 2 {
		t.Fatalf("Terms = %d, want 2", s.Terms())
	}
	cancel()
	<-done
	if running.Load() != 0 || f.resigns.Load() != 2 {
		t.Fatalf("after Run: %d jobs running, %d resigns; want 0, 2", running.Load(), f.resigns.Load())
	}
}
