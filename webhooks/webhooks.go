// Package webhooks tells other systems what happens in the portal: it turns
// audit records into events, keeps the subscribed endpoints, and delivers
// each event to each endpoint, signed, with retries.
//
// # How an event travels
//
// Every change is audited in the transaction that makes it (package audit).
// The dispatcher (RunDispatcher) follows the audit log from a position it
// keeps in the store; for each record whose action has an event type (see
// EventTypes) and each webhook subscribed to that type it writes a delivery
// record, in the same transaction that moves the position on. A restart
// therefore neither loses an event (the position does not pass a record
// before its deliveries exist) nor duplicates one (the deliveries do not
// exist without the new position). license.expired has no audit action of
// its own doing: the expiry check (RunExpiry) writes one, license.expire,
// once per license and expiry time, remembering that it did in the store.
//
// The sender (RunSender) posts the deliveries that are due: the JSON body
// {id, type, created_at, data} with the header Portal-Signature:
// t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>. A 2xx answer
// is success; anything else (another status, a redirect, no answer within
// Options.Timeout) is retried after RetryBase, then twice as long each time
// up to RetryMax, until RetryFor after the event, and then the delivery is
// failed. Every attempt is kept in the delivery (time, status code or error,
// next retry). Deliveries are store records: a restart resumes them.
//
// # Secrets
//
// A webhook's secret must be recoverable to sign deliveries, so it cannot be
// stored as a digest like license keys and tokens. It is derived from an
// Ed25519 seed that is stored with signing.Sealer (bound to the webhook's
// id): encrypted under signing.master_key when one is configured, in
// plaintext (like product keys) otherwise. The secret itself is
// "whsec_" + hex(SHA-256 of a fixed label and the seed's deterministic
// Ed25519 signature of it), shown once on creation.
//
// # Targets
//
// A webhook URL is http or https. Unless allow_private_targets, its host
// must resolve only to public addresses at creation (CheckURL), and the
// sender's dialer checks the address it actually connects to (DialControl),
// which defeats DNS rebinding. No proxy from the environment is used and
// redirects are not followed.
package webhooks

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/store"
)

// Event types, and the audit actions they come from.
const (
	ReleasePublished = "release.published"
	ReleaseYanked    = "release.yanked"
	ArtifactUploaded = "artifact.uploaded"
	ArtifactFailed   = "artifact.failed"
	LicenseCreated   = "license.created"
	LicenseUpdated   = "license.updated"
	LicenseSuspended = "license.suspended"
	LicenseExpired   = "license.expired"
	LinkCreated      = "link.created"
)

// ActionExpire is the audit action the expiry check writes when a license
// reaches its expires_at.
const ActionExpire = "license.expire"

// eventOf maps an audit action to its event type.
var eventOf = map[string]string{
	"release.publish":   ReleasePublished,
	"release.yank":      ReleaseYanked,
	"artifact.uploaded": ArtifactUploaded,
	"artifact.failed":   ArtifactFailed,
	"license.create":    LicenseCreated,
	"license.update":    LicenseUpdated,
	"license.suspend":   LicenseSuspended,
	ActionExpire:        LicenseExpired,
	"link.create":       LinkCreated,
}

// EventTypes returns every event type, sorted.
func EventTypes() []string {
	out := make([]string, 0, len(eventOf))
	for _, t := range eventOf {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// EventType returns the event type of an audit action, "" when it has none.
func EventType(action string) string { return eventOf[action] }

// Limits.
const (
	// MaxWebhooks is the most webhooks a portal keeps: one audit record
	// then always fits the deliveries it makes in one transaction
	// (3 keys each) under store.MaxTxnOps.
	MaxWebhooks = 32
	// MaxAttempts bounds the attempts kept in one delivery; with the
	// default schedule a delivery makes about 35 in 24 hours.
	MaxAttempts = 64
)

// Webhook is a subscribed endpoint, as the API shows it.
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
}

// stored is a Webhook as kept: with its sealed secret seed.
type stored struct {
	Webhook
	Sealed []byte `json:"sealed"`
	// Since is the key of the newest audit record when the webhook was
	// created: it gets the events of later records only.
	Since []byte `json:"since,omitempty"`
}

// Options configure a Service. Zero durations take the defaults.
type Options struct {
	// Sealer seals the webhooks' secrets (signing.master_key).
	Sealer *signing.Sealer
	// AllowPrivate lets webhooks reach loopback, private and link-local
	// addresses (webhooks.allow_private_targets).
	AllowPrivate bool
	// RetryBase is the first retry's delay (1s), doubled after each
	// failure up to RetryMax (1h); deliveries are given up RetryFor (24h)
	// after their event.
	RetryBase, RetryMax, RetryFor time.Duration
	// Timeout bounds one attempt (10s).
	Timeout time.Duration
	// ExpiryInterval is how often RunExpiry looks for licenses that
	// expired (1m).
	ExpiryInterval time.Duration
	// Retention is how long finished deliveries are kept (7 days).
	Retention time.Duration
	// Licenses, when set, is what RunExpiry checks, on its clock.
	Licenses *licenses.Service
	// Resolver resolves webhook hosts at creation (net.DefaultResolver).
	Resolver Resolver
	Log      *slog.Logger
}

// Service keeps webhooks and their deliveries in a store. It is safe for
// concurrent use.
type Service struct {
	db   store.DB
	opts Options
	log  *slog.Logger
	// wake tells the sender that deliveries may have become due.
	wake chan struct{}
	now  func() time.Time // wall clock of deliveries; tests of the package replace it
}

// New returns the webhooks of db.
func New(db store.DB, opts Options) *Service {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.RetryBase, time.Second)
	def(&opts.RetryMax, time.Hour)
	def(&opts.RetryFor, 24*time.Hour)
	def(&opts.Timeout, 10*time.Second)
	def(&opts.ExpiryInterval, time.Minute)
	def(&opts.Retention, 7*24*time.Hour)
	if opts.Sealer == nil {
		opts.Sealer = &signing.Sealer{}
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Service{db: db, opts: opts, log: opts.Log, wake: make(chan struct{}, 1), now: time.Now}
}

// Key layout.
const (
	hookPrefix     = "wh/h/"  // + webhook id: stored
	deliveryPrefix = "wh/d/"  // + delivery id: Delivery
	duePrefix      = "wh/q/"  // + 8-byte due time (Unix ns) + delivery id: nothing
	byHookPrefix   = "wh/w/"  // + webhook id + "/" + delivery id: nothing
	expiredPrefix  = "wh/x/"  // + license id + "/" + expiry (Unix ns, hex): nothing
	positionKey    = "wh/pos" // the dispatcher's audit position
	deliverySeq    = "webhook_delivery"
)

func target(id string) string { return "webhook/" + id }

func notFound(id string) error {
	return portal.Errorf(portal.ENotFound, "no webhook %q", id)
}

func invalidField(field, format string, args ...any) error {
	e := portal.Errorf(portal.EInvalid, format, args...)
	e.Details = map[string]any{"field": field}
	return e
}

// secretLabel is what a webhook's key signs to derive its secret.
const secretLabel = "portal/webhooks/secret/v1"

func secretOf(k *signing.Key) string {
	sum := sha256.Sum256([]byte(secretLabel + "\x00" + k.SparkleSign([]byte(secretLabel))))
	return "whsec_" + hex.EncodeToString(sum[:])
}

// Create registers a webhook for url and events (at least one, each one of
// EventTypes) and returns it with its secret, which is not shown again.
// Errors: EInvalid naming the field (url or events), EConflict beyond
// MaxWebhooks. The creation is audited (webhook.create) in its transaction.
func (s *Service) Create(ctx context.Context, rawURL string, events []string) (Webhook, string, error) {
	if _, err := CheckURL(ctx, rawURL, s.opts.AllowPrivate, s.opts.Resolver); err != nil {
		return Webhook{}, "", err
	}
	if len(events) == 0 {
		return Webhook{}, "", invalidField("events", "events must name at least one event type: %v", EventTypes())
	}
	evs := slices.Clone(events)
	slices.Sort(evs)
	evs = slices.Compact(evs)
	for _, e := range evs {
		if !slices.Contains(EventTypes(), e) {
			return Webhook{}, "", invalidField("events", "unknown event type %q: events are %v", truncate(e, 64), EventTypes())
		}
	}
	var idb [8]byte
	rand.Read(idb[:])
	id := "wh_" + hex.EncodeToString(idb[:])
	key, err := signing.GenerateKey()
	if err != nil {
		return Webhook{}, "", fmt.Errorf("webhooks: create: %w", err)
	}
	sealed, err := s.opts.Sealer.For(target(id)).Seal(key)
	if err != nil {
		return Webhook{}, "", fmt.Errorf("webhooks: create: %w", err)
	}
	h := stored{Webhook: Webhook{ID: id, URL: rawURL, Events: evs, CreatedAt: s.now().UTC().Truncate(time.Second)}, Sealed: sealed}
	err = s.db.Update(ctx, func(tx store.Tx) error {
		n := 0
		if err := tx.Scan([]byte(hookPrefix), store.ScanOptions{}, func(_, _ []byte) (bool, error) {
			n++
			return true, nil
		}); err != nil {
			return err
		}
		if n >= MaxWebhooks {
			return portal.Errorf(portal.EConflict, "a portal keeps at most %d webhooks: delete one first", MaxWebhooks)
		}
		last, err := audit.Last(tx)
		if err != nil {
			return err
		}
		if last == nil {
			last = audit.Prefix()
		}
		h.Since = last
		if n == 0 {
			// The dispatcher stands still while there is no webhook (it
			// writes nothing then); the first one starts it from here.
			if err := tx.Put([]byte(positionKey), last); err != nil {
				return err
			}
		}
		if err := store.PutJSON(tx, []byte(hookPrefix+id), h); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "webhook.create", target(id), nil, h.Webhook)
	})
	if err != nil {
		return Webhook{}, "", fmt.Errorf("webhooks: create: %w", err)
	}
	return h.Webhook, secretOf(key), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// List returns every webhook, oldest first.
func (s *Service) List(ctx context.Context) ([]Webhook, error) {
	var out []Webhook
	err := s.db.View(ctx, func(tx store.Tx) error {
		out = []Webhook{}
		return tx.Scan([]byte(hookPrefix), store.ScanOptions{}, func(_, v []byte) (bool, error) {
			var h stored
			if err := json.Unmarshal(v, &h); err != nil {
				return false, err
			}
			out = append(out, h.Webhook)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func getHook(tx store.Tx, id string) (stored, error) {
	var h stored
	if id == "" || len(id) > 64 {
		return h, notFound(truncate(id, 64))
	}
	b, err := tx.Get([]byte(hookPrefix + id))
	if errors.Is(err, store.ErrNotFound) {
		return h, notFound(id)
	}
	if err != nil {
		return h, err
	}
	return h, json.Unmarshal(b, &h)
}

// Get returns one webhook, or ENotFound.
func (s *Service) Get(ctx context.Context, id string) (Webhook, error) {
	var h stored
	err := s.db.View(ctx, func(tx store.Tx) (err error) {
		h, err = getHook(tx, id)
		return err
	})
	if err != nil {
		return Webhook{}, fmt.Errorf("webhooks: get: %w", err)
	}
	return h.Webhook, nil
}

// Delete removes a webhook (audited as webhook.delete). Its pending
// deliveries are dropped by the sender when they fall due, its finished
// ones by the retention purge.
func (s *Service) Delete(ctx context.Context, id string) error {
	err := s.db.Update(ctx, func(tx store.Tx) error {
		h, err := getHook(tx, id)
		if err != nil {
			return err
		}
		if err := tx.Delete([]byte(hookPrefix + id)); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "webhook.delete", target(id), h.Webhook, nil)
	})
	if err != nil {
		return fmt.Errorf("webhooks: delete: %w", err)
	}
	return nil
}

// secret opens the secret of a stored webhook.
func (s *Service) secret(h stored) (string, error) {
	sl := s.opts.Sealer.For(target(h.ID))
	b := h.Sealed
	if sl.NeedsReseal(b) {
		// Stored before a master key was configured: still usable.
		var err error
		if b, err = sl.Reseal(b); err != nil {
			return "", err
		}
	}
	k, err := sl.Open(b)
	if err != nil {
		return "", err
	}
	return secretOf(k), nil
}

// nudge wakes the sender without blocking.
func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
