package licenses

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/internal/keyset"
	"github.com/portaldist/portal/internal/memo"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store"
)

// Key layout, all under "lic/":
//
//	lic/l/<id>        license
//	lic/k/<digest>    id of the license whose key has that SHA-256
const (
	watchPrefix   = "lic/"
	licensePrefix = "lic/l/"
	keyPrefix     = "lic/k/"
)

// CacheTTL bounds how long a license read by ByKey or Get may be served
// from memory. Writes through this Service drop the cached copy before they
// return; other writes (another Service on the store, another replica) are
// seen through a store watch (see Service), and the TTL bounds how late
// they are seen whatever the watch does.
const CacheTTL = 2 * time.Second

// Service keeps licenses. It is safe for concurrent use.
type Service struct {
	db      store.DB
	catalog *releases.Service
	now     func() time.Time

	// Every licensed request looks its key up; these keep the decoded
	// license (with its constraint parsed) in memory, keyed by key digest
	// and by id. How they learn of writes:
	//   - a write through this Service drops its license from both before
	//     returning (read-your-write);
	//   - a store watch of "lic/", started by New, drops the license of each
	//     changed key as soon as the change is delivered (bbolt: just after
	//     the commit; etcd: the watch's latency), from both caches, and a
	//     store.EventReset empties them;
	//   - CacheTTL bounds the staleness whatever the watch does (not
	//     started because the store refused it, lagging, reconnecting).
	byDigest *memo.Cache[[sha256.Size]byte, License]
	byID     *memo.Cache[string, License]
	// keys knows, in memory, which key digests exist (see MayExist).
	keys *keyset.Set
}

// New returns the license service. catalog is used to check that a
// license's product exists. New starts a watch of db for the caches, with
// a goroutine that runs until db is closed; if db refuses the watch, the
// caches rely on CacheTTL alone.
func New(db store.DB, catalog *releases.Service, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	s := &Service{db: db, catalog: catalog, now: now,
		byDigest: memo.New[[sha256.Size]byte, License](CacheTTL, 200_000),
		byID:     memo.New[string, License](CacheTTL, 200_000),
		keys:     keyset.Follow(db, keyPrefix)}
	if ch, err := db.Watch(context.Background(), []byte(watchPrefix)); err == nil {
		go s.follow(ch)
	}
	return s
}

// follow drops cached licenses as the store reports changes to their keys,
// until events is closed.
func (s *Service) follow(events <-chan store.Event) {
	for ev := range events {
		k := string(ev.Key)
		switch {
		case ev.Type == store.EventReset:
			s.byDigest.Clear()
			s.byID.Clear()
		case strings.HasPrefix(k, licensePrefix):
			id := k[len(licensePrefix):]
			s.byID.Delete(id)
			s.forgetDigestOf(id)
		case strings.HasPrefix(k, keyPrefix):
			if raw, ok := rawDigest(k[len(keyPrefix):]); ok {
				s.byDigest.Delete(raw)
			}
		}
	}
}

// forgetDigestOf drops the by-digest copy of license id. The change is
// committed, so the stored license names its key digest (which never
// changes); when it cannot be read, every by-digest copy goes.
func (s *Service) forgetDigestOf(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var l License
	err := s.db.View(ctx, func(tx store.Tx) error { return getLicense(tx, id, &l) })
	raw, ok := rawDigest(l.KeyDigest)
	if err != nil || !ok {
		s.byDigest.Clear()
		return
	}
	s.byDigest.Delete(raw)
}

func rawDigest(hexDigest string) ([sha256.Size]byte, bool) {
	var raw [sha256.Size]byte
	n, err := hex.Decode(raw[:], []byte(hexDigest))
	return raw, err == nil && n == sha256.Size && len(hexDigest) == 2*sha256.Size
}

// Audit actions of the license writes. Every write through Service appends
// its record (package audit) in the transaction of the change, with the
// actor of the context; a context without an actor is refused
// (audit.ErrNoActor) and nothing is written.
const (
	ActionCreate    = "license.create"
	ActionUpdate    = "license.update"
	ActionSuspend   = "license.suspend"
	ActionReinstate = "license.reinstate"
	ActionRevoke    = "license.revoke"
	ActionReissue   = "license.reissue"
)

func target(id string) string { return "license/" + id }

// Now returns the service's clock, for computing statuses (StatusAt) as
// the service does.
func (s *Service) Now() time.Time { return s.now() }

// checkProducts refuses a product the catalog does not hold.
func (s *Service) checkProducts(ctx context.Context, products []string) error {
	for _, p := range products {
		if _, err := s.catalog.Product(ctx, p); err != nil {
			if portal.IsCode(err, portal.ENotFound) {
				return portal.Errorf(portal.ENotFound, "products: no product %q", p)
			}
			return err
		}
	}
	return nil
}

// Create stores a new active license and returns it with its key. The key
// is returned this once; only its digest is kept.
func (s *Service) Create(ctx context.Context, l License) (License, string, error) {
	if err := l.Validate(); err != nil {
		return License{}, "", err
	}
	if err := s.checkProducts(ctx, l.Products); err != nil {
		return License{}, "", err
	}
	key := secret.New(KeyPrefix)
	now := s.now().UTC().Truncate(time.Second)
	l.ID = newID()
	l.Status = Active
	l.CreatedAt, l.UpdatedAt = now, now
	l.KeyHint = secret.Hint(key)
	l.KeyDigest = secret.Digest(key)
	err := s.db.Update(ctx, func(tx store.Tx) error { return putNew(ctx, tx, l) })
	if err != nil {
		return License{}, "", fmt.Errorf("licenses: create: %w", err)
	}
	s.keys.Add(l.KeyDigest)
	return l, key, nil
}

// putNew writes a new license, its key index and its license.create audit
// record in tx: KeysPerImportedLicense keys.
func putNew(ctx context.Context, tx store.Tx, l License) error {
	if err := store.PutJSON(tx, []byte(licensePrefix+l.ID), l); err != nil {
		return err
	}
	if err := tx.Put([]byte(keyPrefix+l.KeyDigest), []byte(l.ID)); err != nil {
		return err
	}
	return audit.Write(ctx, tx, ActionCreate, target(l.ID), nil, l.Public())
}

// Get returns the license with the id.
func (s *Service) Get(ctx context.Context, id string) (License, error) {
	if l, ok := s.byID.Get(id); ok {
		return l, nil
	}
	gen := s.byID.Gen()
	var l License
	err := s.db.View(ctx, func(tx store.Tx) error { return getLicense(tx, id, &l) })
	if err != nil {
		return l, err
	}
	l.prime()
	s.byID.PutIf(id, l, gen)
	return l, nil
}

func getLicense(tx store.Tx, id string, l *License) error {
	if len(id) == 0 || len(id) > 64 {
		return portal.Errorf(portal.ENotFound, "no such license")
	}
	b, err := tx.Get([]byte(licensePrefix + id))
	if errors.Is(err, store.ErrNotFound) {
		return portal.Errorf(portal.ENotFound, "no license %q", id)
	}
	if err != nil {
		return err
	}
	return decode(b, l)
}

// decode reads a stored license, in either shape (products, or the single
// product of older records).
func decode(b []byte, l *License) error {
	if err := json.Unmarshal(b, l); err != nil {
		return err
	}
	l.normalize()
	return nil
}

// ErrBadKey is returned by ByKey for a key that is malformed or unknown.
var ErrBadKey = portal.Errorf(portal.EUnauthorized, "unknown license key")

// ByKey returns the license whose key is key, or ErrBadKey.
func (s *Service) ByKey(ctx context.Context, key string) (License, error) {
	if !secret.WellFormed(key, KeyPrefix) {
		return License{}, ErrBadKey
	}
	raw := sha256.Sum256([]byte(key))
	if l, ok := s.byDigest.Get(raw); ok {
		return l, nil
	}
	gen := s.byDigest.Gen()
	digest := hex.EncodeToString(raw[:])
	var l License
	err := s.db.View(ctx, func(tx store.Tx) error {
		id, err := tx.Get([]byte(keyPrefix + digest))
		if errors.Is(err, store.ErrNotFound) {
			return ErrBadKey
		}
		if err != nil {
			return err
		}
		if err := getLicense(tx, string(id), &l); err != nil {
			return err
		}
		if !secret.Equal(l.KeyDigest, digest) {
			return ErrBadKey
		}
		return nil
	})
	if err != nil {
		return l, err
	}
	l.prime()
	s.byDigest.PutIf(raw, l, gen)
	return l, nil
}

// MayExist reports, from memory only, whether key may be a stored license
// key: false means it certainly is not (malformed, or no such digest), so
// a caller shedding a flood of bad keys may refuse it without a store read.
// True means ByKey must decide. A key created through this Service is known
// when Create returns; one written elsewhere once the store watch delivers
// it (see internal/keyset).
func (s *Service) MayExist(key string) bool {
	return secret.WellFormed(key, KeyPrefix) && s.keys.MayHave(sha256.Sum256([]byte(key)))
}

// Suspend, Reinstate and Revoke change a license's status. Revocation is
// final; suspending or reinstating a revoked license is a conflict.
func (s *Service) Suspend(ctx context.Context, id string) (License, error) {
	return s.setStatus(ctx, id, Suspended)
}

func (s *Service) Reinstate(ctx context.Context, id string) (License, error) {
	return s.setStatus(ctx, id, Active)
}

func (s *Service) Revoke(ctx context.Context, id string) (License, error) {
	return s.setStatus(ctx, id, Revoked)
}

func (s *Service) setStatus(ctx context.Context, id, status string) (License, error) {
	action := map[string]string{Suspended: ActionSuspend, Active: ActionReinstate, Revoked: ActionRevoke}[status]
	var l License
	err := s.db.Update(ctx, func(tx store.Tx) error {
		l = License{} // decode into a fresh value on every run
		if err := getLicense(tx, id, &l); err != nil {
			return err
		}
		if l.Status == status {
			return nil
		}
		if l.Status == Revoked {
			return portal.Errorf(portal.EConflict, "license %s is revoked; revocation is final", id)
		}
		before := l.Public()
		l.Status = status
		l.UpdatedAt = s.now().UTC().Truncate(time.Second)
		if err := store.PutJSON(tx, []byte(licensePrefix+id), l); err != nil {
			return err
		}
		return audit.Write(ctx, tx, action, target(id), before, l.Public())
	})
	s.forget(l)
	if err != nil {
		return License{}, fmt.Errorf("licenses: %s %s: %w", status, id, err)
	}
	return l, nil
}

// Put stores licenses as they are, with their key digests; seeding and
// imports use it. Each license must have ID and KeyDigest set. Each is
// audited as license.create with the actor of ctx. It writes
// PutBatch licenses per transaction, in order: when one fails, the licenses
// before it are stored and the rest are not, and Put returns the error.
// Putting the same licenses again is harmless.
func (s *Service) Put(ctx context.Context, ls []License) error {
	defer s.byDigest.Clear()
	defer s.byID.Clear()
	for len(ls) > 0 {
		chunk := ls[:min(len(ls), PutBatch)]
		err := s.db.Update(ctx, func(tx store.Tx) error {
			for _, l := range chunk {
				l.normalize()
				if err := putNew(ctx, tx, l); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("licenses: put %s and the %d after it: %w", chunk[0].ID, len(ls)-1, err)
		}
		for _, l := range chunk {
			s.keys.Add(l.KeyDigest)
		}
		ls = ls[len(chunk):]
	}
	return nil
}

// PutBatch is how many licenses Put writes per transaction: each takes
// three keys of store.MaxTxnOps (the license, its key index and its audit
// record), and the audit sequence one more.
const PutBatch = (store.MaxTxnOps - 1) / 3

// SetCacheTTL changes how long looked-up licenses stay in memory and drops
// what is cached; 0 turns the cache off (every lookup reads the store).
// It is safe to call at any time.
func (s *Service) SetCacheTTL(d time.Duration) {
	s.byDigest.SetTTL(d)
	s.byID.SetTTL(d)
}

// forget drops the cached copies of a license after a write.
func (s *Service) forget(l License) {
	if raw, ok := rawDigest(l.KeyDigest); ok {
		s.byDigest.Delete(raw)
	}
	s.byID.Delete(l.ID)
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
