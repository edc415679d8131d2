// Package leader runs the portal's cluster-wide background work (the
// expired-upload sweep, the retention purges, the webhooks' dispatcher,
// sender and expiry check) on exactly one replica at a time.
//
// An Elector says whether this replica leads: Single for a store only one
// process can open (bbolt), which always leads, and Etcd for replicas
// sharing an etcd cluster, an election on a leased key
// (go.etcd.io/etcd/client/v3/concurrency). A Scheduler campaigns through
// the Elector and, while it leads, runs the jobs registered with it; when
// the term ends it cancels their context, waits for them to return, and
// campaigns again.
//
// Work that belongs to this replica alone (flushing its own ledger queue
// or the last-use times of the tokens it authenticated, following the
// store's watch into its caches) does not go through a Scheduler: it runs
// on every replica.
//
// # What "exactly one" means
//
// With Single, trivially. With Etcd, a term ends on this replica when the
// renewals of its lease stop being acknowledged for the lease's TTL less a
// margin (a fifth of the TTL, at most 2 s), when the election shows another
// leader, or when it resigns; another replica's term starts once the lease
// has expired on the cluster or was revoked. The margin makes a replica cut
// off from etcd stop before the cluster lets its lease go, as long as a
// renewal's round trip is shorter than the margin and the clocks run at the
// same rate. A replica that is merely slow (a long GC pause, a stopped VM)
// may still finish the job step it was in after another took over. Every
// cluster-wide job is written for that: each step is one serializable store
// transaction that re-reads what it changes, so two replicas running a step
// at once commit it once. The one effect outside the store, a webhook
// delivery's POST, may then be sent twice; receivers drop repeats by the
// event's ID.
package leader

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Elector decides which replica leads.
type Elector interface {
	// Campaign blocks until this replica leads, and returns its term; or
	// until ctx ends, and returns ctx's error; or fails (the cluster is
	// unreachable), and the caller tries again later.
	Campaign(ctx context.Context) (Term, error)
}

// Term is one period during which this replica leads.
type Term interface {
	// Done is closed when this replica stops leading: the term was
	// resigned, the replica lost its lease, or another replica leads.
	Done() <-chan struct{}
	// Resign ends the term (Done is closed) and lets another replica lead
	// at once rather than after the lease's TTL. Calling it after the term
	// ended, or twice, is harmless.
	Resign(ctx context.Context) error
}

// Single is the Elector of a replica that is alone by construction (its
// store admits one process): it always leads, at once.
type Single struct{}

// Campaign returns a term that lasts until Resign.
func (Single) Campaign(ctx context.Context) (Term, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &singleTerm{done: make(chan struct{})}, nil
}

type singleTerm struct {
	once sync.Once
	done chan struct{}
}

func (t *singleTerm) Done() <-chan struct{} { return t.done }

func (t *singleTerm) Resign(context.Context) error {
	t.once.Do(func() { close(t.done) })
	return nil
}

// DefaultRetry is how long a Scheduler waits after a failed Campaign
// before trying again.
const DefaultRetry = time.Second

// resignTimeout bounds the Resign a Scheduler makes when it stops: the
// lease's TTL ends the term anyway when etcd does not answer.
const resignTimeout = 5 * time.Second

// Scheduler runs registered jobs while this replica leads. Register every
// job before Run; a Scheduler is run once.
type Scheduler struct {
	el    Elector
	log   *slog.Logger
	retry time.Duration

	mu   sync.Mutex
	jobs []job

	leading atomic.Bool
	terms   atomic.Uint64
	changed chan struct{} // closed and replaced whenever leading changes
	chMu    sync.Mutex
}

type job struct {
	name string
	run  func(ctx context.Context)
}

// NewScheduler returns a Scheduler campaigning through el. log receives a
// line for each term that starts and ends (nil: slog.Default()).
func NewScheduler(el Elector, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.Default()
	}
	return &Scheduler{el: el, log: log, retry: DefaultRetry, changed: make(chan struct{})}
}

// SetRetry sets how long Run waits after a failed Campaign (default
// DefaultRetry). Call it before Run.
func (s *Scheduler) SetRetry(d time.Duration) {
	if d > 0 {
		s.retry = d
	}
}

// Loop registers a job that runs until its ctx ends: run is called when a
// term starts, and its ctx is cancelled when the term ends (or Run's ctx
// does); the term is not given up to another replica before run has
// returned. A run that returns earlier is not called again in that term.
func (s *Scheduler) Loop(name string, run func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = append(s.jobs, job{name: name, run: run})
}

// Every registers a job that calls fn when a term starts and then every
// interval until the term ends. An error is logged (unless the term
// ended) and fn is called again at the next tick.
func (s *Scheduler) Every(name string, interval time.Duration, fn func(ctx context.Context) error) {
	s.Loop(name, func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("leader: job failed", "job", name, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// Elector returns the elector the Scheduler campaigns through.
func (s *Scheduler) Elector() Elector { return s.el }

// Leading reports whether this replica leads now (its jobs are running or
// being started).
func (s *Scheduler) Leading() bool { return s.leading.Load() }

// Terms returns how many terms this replica has led since Run started.
func (s *Scheduler) Terms() uint64 { return s.terms.Load() }

// Changed returns a channel that is closed the next time Leading changes.
func (s *Scheduler) Changed() <-chan struct{} {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	return s.changed
}

func (s *Scheduler) setLeading(v bool) {
	// Under chMu, so that whoever sees the new value and then calls
	// Changed gets the channel of the next change, not this one.
	s.chMu.Lock()
	defer s.chMu.Unlock()
	s.leading.Store(v)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Run campaigns, runs the jobs for each term this replica leads, and
// campaigns again when a term ends, until ctx ends. Then it cancels the
// jobs, waits for them to return, resigns (so another replica takes over
// without waiting for the lease to expire) and returns.
func (s *Scheduler) Run(ctx context.Context) {
	s.mu.Lock()
	jobs := append([]job(nil), s.jobs...)
	s.mu.Unlock()
	for ctx.Err() == nil {
		term, err := s.el.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("leader: campaign failed; trying again", "err", err, "in", s.retry)
			t := time.NewTimer(s.retry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		s.lead(ctx, term, jobs)
	}
}

// lead runs jobs for one term and returns when it ended and they have
// returned.
func (s *Scheduler) lead(ctx context.Context, term Term, jobs []job) {
	jctx, cancel := context.WithCancel(ctx)
	s.terms.Add(1)
	s.setLeading(true)
	s.log.Info("leader: this replica leads; starting the cluster-wide jobs", "jobs", len(jobs))
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			j.run(jctx)
			if jctx.Err() == nil {
				s.log.Warn("leader: job returned before its term ended", "job", j.name)
			}
		})
	}
	select {
	case <-ctx.Done():
	case <-term.Done():
		s.log.Warn("leader: this replica no longer leads; stopping the cluster-wide jobs")
	}
	// Stop leading at once: the jobs' context ends now, and the term is
	// resigned only once they have returned, so a graceful handover never
	// runs a job on two replicas.
	s.setLeading(false)
	cancel()
	wg.Wait()
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), resignTimeout)
	defer rcancel()
	if err := term.Resign(rctx); err != nil {
		s.log.Warn("leader: resign failed; another replica leads once the lease expires", "err", err)
	}
}
