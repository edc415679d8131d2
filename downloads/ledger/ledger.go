// Package ledger records every download grant and counts downloads per
// release and per license and day, without an fsync in the request path.
//
// # Durability
//
// Record only appends the grant to an in-memory queue. A background
// goroutine writes the whole queue every FlushInterval, or sooner once the
// queue is half full, in transactions of at most store.MaxTxnOps keys (a
// grant is committed together with its release's count; see Flush). A crash
// (anything but a clean Close) therefore loses the grants queued since the
// last successful flush: at most about FlushInterval worth of downloads, and
// never more than Queue grants. The same window applies to the daily quota
// counts: after a crash a license may get up to that many extra downloads on
// that day. Close stops the goroutine and writes everything queued, so a
// clean shutdown loses nothing; stop serving requests before calling it,
// since a Record after Close is dropped (and counted).
//
// A flush appends: grants go to a log in sequence order (led/g), so a flush
// writes the log's last pages, its releases' counters and the quota counts
// of the licenses it saw, rather than one leaf page per license. The log is
// indexed by license later, in rollups (see "Key layout").
//
// # Back-pressure
//
// When the queue is full (downloads arrive faster than the store commits, or
// the store is failing) Record wakes the flusher and waits up to
// Options.FullWait for room. If there is still none, the grant is dropped,
// counted in Stats.Dropped (export it as a metric) and reported in the log at
// the next flush: a request is never held longer than FullWait, and a drop is
// never silent. A failed flush keeps its grants queued and is retried every
// FlushInterval. A failed rollup loses nothing (the grants are in the log,
// and ByLicense finds them there) and is retried at the next flush.
//
// # Reads
//
// ByLicense, Count and Counts read the store only: grants still queued (the
// last FlushInterval or so) do not show yet. Call Flush first when a caller
// needs to see everything recorded so far. ByLicense reads the license's
// key in each rollup range and, beyond the index, filters the log's last
// grants (fewer than about Options.RollupGrants for each replica).
//
// # Quota
//
// Reserve enforces a license's downloads per day at request time, from an
// in-memory count per (license, UTC day) that is loaded lazily from the store
// and persisted by every flush as a delta. Each ledger watches the stored
// counts (store.DB.Watch on led/q/): when another replica's flush changes a
// count this one holds, it reloads it, and the count becomes the stored one
// plus this ledger's own reservations not yet flushed. So with N replicas a
// license's daily downloads exceed its limit by at most what the other
// replicas reserved and had not yet flushed, or flushed within the watch's
// lag: about (N-1) x (that license's download rate on one replica) x
// (FlushInterval + watch lag), and never more than (N-1) x limit (each
// replica refuses at the limit on its own). The watch lag is the store's
// delivery plus, at worst, a flush or rollup this ledger is running (a
// reload waits for it, so that it never counts a reservation twice). Reservations are counted in
// memory first so that a grant is never an extra store round trip; the
// overshoot is the price of that. On one replica the count is exact.
//
// # Key layout, all under "led/"
//
//	led/g/<seq>                  grant (JSON), the log; seq is 8 bytes big-endian
//	                             from the "ledger" sequence, in commit order
//	led/i/<end>/<license>        the index: the sequences (8 bytes each, ascending)
//	                             of the license's grants in the rollup range that
//	                             ends with seq <end> (8 bytes); open products'
//	                             grants have license "" (led/i/<end>/)
//	led/r/<end>                  a rollup range whose index is complete (empty)
//	led/w                        the log sequence up to which the index is written
//	led/wt                       the end of the range a rollup is writing in
//	                             several transactions (absent between rollups)
//	led/l/<license>/<seq>        grant (JSON) in the layout before the log: read by
//	                             ByLicense after the index (its sequences are all
//	                             older), deleted by Purge, never written
//	led/c/<product>/<version>    downloads of that release, uint64 big-endian
//	led/q/<license>/<yyyymmdd>   downloads counted against the license's quota
//	                             that UTC day, uint64 big-endian
//	led/d/<product>/<version>/<yyyymmdd>
//	                             downloads of that release that UTC day (the daily
//	                             rollup), uint64 big-endian
//
// A database written before the log keeps its led/l grants where they are:
// nothing is migrated at start, ByLicense lists them after the newer ones,
// and retention deletes them as before.
//
// A rollup runs in a flush once this ledger has written Options.RollupGrants
// grants since the last one (or, when set, Options.RollupInterval after it
// with any grant written): it reads
// the log from led/w on and writes one index key for each license in the
// range (one per license and rollup, not one per grant or flush), the range
// and the new led/w. A range's keys all sort after the older ranges' keys,
// so a rollup appends too. Any replica may run it; transactions check led/w,
// so two replicas never index one grant twice. A range holds up to 32,768
// grants, so the ranges kept are about the grants kept / 30,000 (12,000
// for a year at a million downloads a day); ByLicense reads a license's key
// in each of them (a Get each, see ByLicense), and Purge deletes whole
// ranges.
//
// # Retention
//
// Grants and quota counts accumulate; Purge deletes those older than a
// cutoff (downloads.ledger_retention), with the rollup ranges whose grants
// are all deleted, while the release totals (led/c) and the daily rollups
// (led/d), one key per release and day, are kept. Rollups are written with
// their grants, so they count the grants recorded since they were
// introduced.
//
// Key segments are used as given (license IDs, product slugs and versions
// hold no "/"); a segment that holds "/" or "%" is path-escaped, so no value
// can reach into another one's keys.
package ledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/portaldist/portal/store"
)

// Grant is one download handed out: a signed storage URL minted for a
// customer, directly or through a share link.
type Grant struct {
	Time time.Time `json:"time"`
	// License is the license ID, "" for open products.
	License  string `json:"license,omitempty"`
	Product  string `json:"product"`
	Version  string `json:"version"`
	Filename string `json:"filename"`
	Platform string `json:"platform,omitempty"`
	Arch     string `json:"arch,omitempty"`
	// Client is the requester's address.
	Client string `json:"client,omitempty"`
	// UserAgent is truncated to MaxUserAgent bytes by Record.
	UserAgent string `json:"user_agent,omitempty"`
	// ShareLink is the link ID when the download came through a share link.
	ShareLink string `json:"share_link,omitempty"`
}

// Field limits applied by Record. Free-text fields are truncated; a grant
// whose key fields (license, product, version) are longer than
// MaxKeyField is refused, as is one without product or version.
const (
	MaxUserAgent = 256
	MaxText      = 256 // client, filename, platform, arch, share link
	MaxKeyField  = 256
)

// Page sizes of ByLicense.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Options tune New. Zero values mean the defaults.
type Options struct {
	// Queue is the most grants held in memory, written or not yet (default
	// 10000). It bounds what a crash can lose.
	Queue int
	// FlushInterval is the longest a grant waits in the queue (default 1s).
	FlushInterval time.Duration
	// FullWait is the longest Record waits for room in a full queue before
	// dropping the grant (default 2s).
	FullWait time.Duration
	// Now stamps grants recorded without a time (default time.Now).
	Now func() time.Time
	// Logger receives flush failures and drop reports (default
	// slog.Default()).
	Logger *slog.Logger
	// RollupGrants and RollupInterval say when a flush indexes the log by
	// license (see "Key layout"): once this ledger has written RollupGrants
	// grants since the last rollup (default 50000), or, when
	// RollupInterval is set (default 0: never), that long after it when it
	// has written any. ByLicense filters the grants beyond the index, so
	// RollupGrants bounds what one ByLicense call scans; every rollup adds a
	// range that ByLicense reads a key of, so frequent rollups of few grants
	// make ByLicense slower.
	RollupGrants   int
	RollupInterval time.Duration
}

// Stats are the ledger's counters since New, for metrics.
type Stats struct {
	Queued      int    // grants not yet committed (queued or being written)
	Capacity    int    // the most grants Queued may reach (Options.Queue)
	Recorded    uint64 // grants committed to the store
	Dropped     uint64 // grants lost to a full queue or recorded after Close
	Rejected    uint64 // grants refused for missing or oversize key fields
	FlushErrors uint64 // failed flush transactions (their grants were kept)
	Indexed     uint64 // grants this ledger's rollups indexed by license
	Reloads     uint64 // quota counts reloaded because the store's changed
}

// Ledger records grants and counts downloads. It is safe for concurrent use.
// It owns a goroutine from New until Close.
type Ledger struct {
	db       store.DB
	max      int
	interval time.Duration
	fullWait time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu       sync.Mutex
	queue    []Grant
	spare    []Grant       // the other buffer, reused between flushes
	inflight int           // grants taken by the running flush, not yet committed
	room     chan struct{} // closed (and replaced) when a flush frees room
	closed   bool

	flushMu sync.Mutex // one flush at a time: keeps seq order and quota deltas exact

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	recorded, dropped, rejected, flushErrors atomic.Uint64
	indexed, reloads                         atomic.Uint64
	reportedDrops                            uint64 // under flushMu

	// Rollups, under flushMu.
	rollupGrants   uint64
	rollupInterval time.Duration
	sinceRollup    uint64 // grants this ledger committed since its last rollup
	lastRollup     time.Time

	quota quotas
	// stopWatch ends the quota watch; watchDone is closed when it has.
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// New starts a ledger on db.
func New(db store.DB, opts Options) *Ledger {
	if opts.Queue <= 0 {
		opts.Queue = 10000
	}
	if opts.Queue < 2 {
		opts.Queue = 2
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.FullWait <= 0 {
		opts.FullWait = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RollupGrants <= 0 {
		opts.RollupGrants = 50000
	}
	l := &Ledger{
		db:       db,
		max:      opts.Queue,
		interval: opts.FlushInterval,
		fullWait: opts.FullWait,
		now:      opts.Now,
		log:      opts.Logger,
		room:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),

		rollupGrants:   uint64(opts.RollupGrants),
		rollupInterval: opts.RollupInterval,
		lastRollup:     time.Now(),
	}
	l.quota.entries = make(map[quotaKey]*quotaEntry)
	l.startWatch()
	go l.run()
	return l
}

// Record queues g to be written by the next flush. It does not block unless
// the queue is full, and then for at most Options.FullWait (see the package
// comment). A zero g.Time is set to now; times are kept in UTC.
func (l *Ledger) Record(g Grant) {
	if g.Time.IsZero() {
		g.Time = l.now()
	}
	g.Time = g.Time.UTC()
	g.UserAgent = truncate(g.UserAgent, MaxUserAgent)
	g.Client = truncate(g.Client, MaxText)
	g.Filename = truncate(g.Filename, MaxText)
	g.Platform = truncate(g.Platform, MaxText)
	g.Arch = truncate(g.Arch, MaxText)
	g.ShareLink = truncate(g.ShareLink, MaxText)
	if g.Product == "" || g.Version == "" ||
		len(g.License) > MaxKeyField || len(g.Product) > MaxKeyField || len(g.Version) > MaxKeyField {
		l.rejected.Add(1)
		return
	}

	var timer *time.Timer
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			l.dropped.Add(1)
			break
		}
		if len(l.queue)+l.inflight < l.max {
			l.queue = append(l.queue, g)
			half := len(l.queue) >= l.max/2
			l.mu.Unlock()
			if half {
				l.wake()
			}
			break
		}
		room := l.room
		l.mu.Unlock()
		l.wake()
		if timer == nil {
			timer = time.NewTimer(l.fullWait)
		}
		select {
		case <-room:
			continue
		case <-timer.C:
			l.dropped.Add(1)
		}
		break
	}
	if timer != nil {
		timer.Stop()
	}
}

func (l *Ledger) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *Ledger) run() {
	defer close(l.done)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	failing := false
	for {
		// After a failure, wait for the ticker rather than retrying on every
		// Record of a full queue.
		kick := l.kick
		if failing {
			kick = nil
		}
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-kick:
		}
		failing = l.Flush(context.Background()) != nil
	}
}

// Flush writes everything queued so far, with the pending quota counts, in
// as few transactions as the store's MaxTxnOps allows (bbolt: thousands of
// grants a commit; etcd: a few dozen): each commits some grants
// in order together with the release counts they add, and the quota counts
// follow in transactions of their own. Grants and counts already committed
// when one transaction fails stay committed and are not written again; the
// rest stay queued, ahead of the grants recorded meanwhile, for the next
// flush. Safe to call at any time, concurrently with Record.
func (l *Ledger) Flush(ctx context.Context) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()

	if d := l.dropped.Load(); d != l.reportedDrops {
		l.log.Warn("ledger: download grants dropped: the queue stayed full", "dropped", d-l.reportedDrops, "dropped_total", d)
		l.reportedDrops = d
	}

	l.mu.Lock()
	batch := l.queue
	l.queue = l.spare[:0]
	l.spare = nil
	l.inflight = len(batch)
	l.mu.Unlock()

	deltas := l.quota.pending()
	if len(batch) == 0 && len(deltas) == 0 {
		l.mu.Lock()
		l.spare = batch
		l.inflight = 0
		l.mu.Unlock()
		return l.maybeRollup(ctx)
	}

	var err error
	done := 0 // grants committed
	for done < len(batch) && err == nil {
		chunk := batch[done : done+chunkLen(batch[done:], l.db.MaxTxnOps())]
		err = l.db.Update(ctx, func(tx store.Tx) error { return writeGrants(tx, chunk) })
		if err == nil {
			done += len(chunk)
			l.sinceRollup += uint64(len(chunk))
			l.recorded.Add(uint64(len(chunk)))
			l.mu.Lock()
			l.inflight -= len(chunk)
			close(l.room)
			l.room = make(chan struct{})
			l.mu.Unlock()
		}
	}
	for len(deltas) > 0 && err == nil {
		chunk := deltas[:min(len(deltas), l.db.MaxTxnOps())]
		err = l.db.Update(ctx, func(tx store.Tx) error { return writeQuotas(tx, chunk) })
		if err == nil {
			l.quota.committed(chunk)
			deltas = deltas[len(chunk):]
		}
	}

	l.mu.Lock()
	if rest := batch[done:]; len(rest) > 0 {
		// Keep the unwritten grants, oldest first, ahead of those queued
		// meanwhile.
		clear(batch[:done])
		newer := l.queue
		l.queue = append(rest, newer...)
		clear(newer)
		l.spare = newer[:0]
	} else {
		clear(batch)
		l.spare = batch[:0]
	}
	l.inflight = 0
	l.mu.Unlock()

	if err != nil {
		l.flushErrors.Add(1)
		l.log.Error("ledger: flush failed; unwritten grants kept for the next attempt", "grants", len(batch), "written", done, "err", err)
		return fmt.Errorf("ledger: flush: %d of %d grants written: %w", done, len(batch), err)
	}
	return l.maybeRollup(ctx)
}

// maybeRollup indexes the log when it is due. The caller holds flushMu. A
// failure loses nothing: the grants stay in the log, ByLicense still finds
// them, and the next flush tries again.
func (l *Ledger) maybeRollup(ctx context.Context) error {
	if !l.rollupDue() {
		return nil
	}
	if err := l.rollup(ctx); err != nil {
		l.flushErrors.Add(1)
		l.log.Error("ledger: indexing the log by license failed; retried at the next flush", "err", err)
		return err
	}
	return nil
}

type release struct{ product, version string }

type releaseDay struct {
	release
	day int64
}

// chunkLen returns how many of the grants gs (at least one) one transaction
// of at most maxOps keys can write: each takes a key, each release it counts a key of its own,
// each release and day a rollup key, and the "ledger" sequence one more.
func chunkLen(gs []Grant, maxOps int) int {
	seen := make(map[release]bool)
	seenDay := make(map[releaseDay]bool)
	keys := 1
	for i := range gs {
		r := release{gs[i].Product, gs[i].Version}
		rd := releaseDay{r, dayOf(gs[i].Time)}
		need := 1
		if !seen[r] {
			need++
		}
		if !seenDay[rd] {
			need++
		}
		if keys+need > maxOps {
			return i
		}
		seen[r], seenDay[rd] = true, true
		keys += need
	}
	return len(gs)
}

// writeGrants stores grants and adds them to their releases' counts. It has
// no effect outside tx, so the store may run it more than once.
func writeGrants(tx store.Tx, grants []Grant) error {
	counts := make(map[release]uint64)
	days := make(map[releaseDay]uint64)
	for i := range grants {
		g := &grants[i]
		seq, err := tx.NextSequence("ledger")
		if err != nil {
			return err
		}
		v, err := marshalGrant(g)
		if err != nil {
			return err
		}
		if err := tx.Put(logKey(seq), v); err != nil {
			return err
		}
		r := release{g.Product, g.Version}
		counts[r]++
		days[releaseDay{r, dayOf(g.Time)}]++
	}
	for r, n := range counts {
		if err := addUint64(tx, []byte(countKey(r.product, r.version)), n); err != nil {
			return err
		}
	}
	for rd, n := range days {
		if err := addUint64(tx, []byte(dailyKey(rd.product, rd.version, rd.day)), n); err != nil {
			return err
		}
	}
	return nil
}

// wireGrant is Grant as stored, with the time already formatted: what
// json.Marshal writes for a Grant, without going through time.Time's
// MarshalJSON and re-compacting its output for every grant.
type wireGrant struct {
	Time      string `json:"time"`
	License   string `json:"license,omitempty"`
	Product   string `json:"product"`
	Version   string `json:"version"`
	Filename  string `json:"filename"`
	Platform  string `json:"platform,omitempty"`
	Arch      string `json:"arch,omitempty"`
	Client    string `json:"client,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	ShareLink string `json:"share_link,omitempty"`
}

func marshalGrant(g *Grant) ([]byte, error) {
	if y := g.Time.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("ledger: grant time %s is outside years 0-9999", g.Time)
	}
	return json.Marshal(&wireGrant{
		Time: g.Time.Format(time.RFC3339Nano), License: g.License, Product: g.Product, Version: g.Version,
		Filename: g.Filename, Platform: g.Platform, Arch: g.Arch, Client: g.Client, UserAgent: g.UserAgent,
		ShareLink: g.ShareLink,
	})
}

// writeQuotas adds quota deltas to the stored daily counts.
func writeQuotas(tx store.Tx, deltas []quotaDelta) error {
	for _, d := range deltas {
		if err := addUint64(tx, []byte(quotaKeyOf(d.key)), d.n); err != nil {
			return err
		}
	}
	return nil
}

func addUint64(tx store.Tx, key []byte, n uint64) error {
	cur, err := getUint64(tx, key)
	if err != nil {
		return err
	}
	return tx.Put(key, binary.BigEndian.AppendUint64(nil, cur+n))
}

func getUint64(tx store.Tx, key []byte) (uint64, error) {
	v, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("ledger: counter %q is %d bytes, not 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close stops the background goroutine and writes everything queued. After
// Close, Record drops (and counts) its grants, and Reserve still counts in
// memory but nothing persists those counts unless Flush is called. When ctx ends before the
// running flush finishes, or the final flush fails, Close returns the error
// and the unwritten grants stay in memory; calling Close again retries.
func (l *Ledger) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.room) // wake Records waiting for room: they now drop
		l.room = make(chan struct{})
		l.mu.Unlock()
		close(l.stop)
		l.stopWatch()
	})
	for _, done := range []chan struct{}{l.done, l.watchDone} {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("ledger: close: %w", ctx.Err())
		}
	}
	return l.Flush(ctx)
}

// Stats returns the ledger's counters.
func (l *Ledger) Stats() Stats {
	l.mu.Lock()
	queued := len(l.queue) + l.inflight
	l.mu.Unlock()
	return Stats{
		Queued:      queued,
		Capacity:    l.max,
		Recorded:    l.recorded.Load(),
		Dropped:     l.dropped.Load(),
		Rejected:    l.rejected.Load(),
		FlushErrors: l.flushErrors.Load(),
		Indexed:     l.indexed.Load(),
		Reloads:     l.reloads.Load(),
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// seg makes s one key segment: unchanged unless it holds "/" or "%".
func seg(s string) string {
	if strings.ContainsAny(s, "/%") {
		return url.PathEscape(s)
	}
	return s
}

func unseg(s string) string {
	if strings.Contains(s, "%") {
		if u, err := url.PathUnescape(s); err == nil {
			return u
		}
	}
	return s
}

func countPrefix(product string) string { return "led/c/" + seg(product) + "/" }

func countKey(product, version string) string { return countPrefix(product) + seg(version) }

const quotaPrefix = "led/q/"

func quotaKeyOf(k quotaKey) string {
	return quotaPrefix + seg(k.license) + "/" + dayStart(k.day).Format("20060102")
}

func dailyPrefix(product, version string) string {
	return "led/d/" + seg(product) + "/" + seg(version) + "/"
}

func dailyKey(product, version string, day int64) string {
	return dailyPrefix(product, version) + dayStart(day).Format("20060102")
}
