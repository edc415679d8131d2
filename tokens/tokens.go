// Package tokens keeps the API tokens of administrators and publishers. A
// token is shown once when created; the store keeps only its digest.
// Creating and deleting a token are audited (token.create, token.delete)
// in the same transaction, without the digest, so both need an actor in
// their context (see package audit); the last-use times FlushUsage writes
// are bookkeeping and are not audited. A
// token may carry an expiry, after which Authenticate refuses it. When each
// token was last used is kept in memory by Authenticate and written by
// FlushUsage at most once per UsageInterval, so a request never writes to
// the store to authenticate.
package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/internal/keyset"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store"
)

// Roles.
const (
	Admin     = "admin"
	Publisher = "publisher"
)

// Prefix starts every API token.
const Prefix = "ptk"

// Token is an API identity.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Products  []string  `json:"products,omitempty"` // publisher scope
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt, when set, is when the token stops authenticating.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// LastUsedAt is when the token last authenticated, to the second, as
	// far as the store knows: see Service.List and FlushUsage for how late
	// it may be. Nil for a token never used (or not yet flushed).
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Hint       string     `json:"hint"`
	Digest     string     `json:"digest,omitempty"`
}

// Public returns t without server-only fields.
func (t Token) Public() Token {
	t.Digest = ""
	return t
}

// MayPublish reports whether t may manage releases of product.
func (t Token) MayPublish(product string) bool {
	return t.Role == Admin || (t.Role == Publisher && slices.Contains(t.Products, product))
}

const (
	tokenPrefix  = "tok/t/"
	digestPrefix = "tok/d/"
)

// Service keeps tokens. It is safe for concurrent use.
type Service struct {
	db  store.DB
	now func() time.Time
	// digests knows, in memory, which token digests exist (see MayExist).
	digests *keyset.Set
	// usage holds, per token id, when Authenticate last accepted the token
	// (*usage; see usage.go): last_used_at is kept in memory and written
	// by FlushUsage, never by the request that used the token.
	usage   sync.Map
	flushMu sync.Mutex // one FlushUsage at a time
}

func New(db store.DB, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, now: now, digests: keyset.Follow(db, digestPrefix)}
}

// Create stores a new token that never expires; see CreateWith.
func (s *Service) Create(ctx context.Context, name, role string, products []string) (Token, string, error) {
	return s.CreateWith(ctx, NewToken{Name: name, Role: role, Products: products})
}

// NewToken is what an administrator declares when creating a token.
type NewToken struct {
	// Name is a label for people (at most 200 bytes); "" means the role.
	Name string
	// Role is Admin or Publisher.
	Role string
	// Products is a publisher's scope: 1 to 100 product slugs, which need
	// not exist yet. Admin tokens cover every product and name none.
	Products []string
	// ExpiresAt, when not zero, is when the token stops authenticating
	// (kept to the second, in UTC); it must be in the future.
	ExpiresAt time.Time
}

// CreateWith stores a new token and returns it with its secret, shown this
// once. Errors: EInvalid naming the field (name, role, products,
// expires_at); nothing is stored then.
func (s *Service) CreateWith(ctx context.Context, in NewToken) (Token, string, error) {
	name, role, products := in.Name, in.Role, in.Products
	now := s.now().UTC()
	var expires *time.Time
	if !in.ExpiresAt.IsZero() {
		exp := in.ExpiresAt.UTC().Truncate(time.Second)
		if !exp.After(now) {
			return Token{}, "", portal.Errorf(portal.EInvalid, "expires_at %s is not in the future", in.ExpiresAt.UTC().Format(time.RFC3339))
		}
		expires = &exp
	}
	if name == "" {
		name = role
	}
	if err := releases.ValidateText("name", name, 200, false); err != nil {
		return Token{}, "", err
	}
	switch role {
	case Admin:
		if len(products) > 0 {
			return Token{}, "", portal.Errorf(portal.EInvalid, "admin tokens cover every product: leave products out")
		}
	case Publisher:
		if len(products) == 0 {
			return Token{}, "", portal.Errorf(portal.EInvalid, "a publisher token needs at least one product")
		}
		if len(products) > 100 {
			return Token{}, "", portal.Errorf(portal.EInvalid, "a publisher token covers at most 100 products")
		}
		for _, p := range products {
			if err := releases.ValidateSlug(p); err != nil {
				return Token{}, "", err
			}
		}
	default:
		return Token{}, "", portal.Errorf(portal.EInvalid, "role must be %q or %q", Admin, Publisher)
	}
	raw := secret.New(Prefix)
	b := make([]byte, 8)
	rand.Read(b)
	t := Token{
		ID: hex.EncodeToString(b), Name: name, Role: role, Products: products,
		CreatedAt: now.Truncate(time.Second), ExpiresAt: expires, Hint: secret.Hint(raw), Digest: secret.Digest(raw),
	}
	err := s.db.Update(ctx, func(tx store.Tx) error {
		if err := store.PutJSON(tx, []byte(tokenPrefix+t.ID), t); err != nil {
			return err
		}
		if err := tx.Put([]byte(digestPrefix+t.Digest), []byte(t.ID)); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "token.create", Target(t.ID), nil, t.audited())
	})
	if err != nil {
		return Token{}, "", fmt.Errorf("tokens: create: %w", err)
	}
	s.digests.Add(t.Digest)
	return t, raw, nil
}

// ErrBadToken is returned for a malformed, unknown or deleted token.
var ErrBadToken = portal.Errorf(portal.EUnauthorized, "unknown or deleted API token")

// ErrExpired is returned for a token past its ExpiresAt.
var ErrExpired = portal.Errorf(portal.EUnauthorized, "token expired")

// Authenticate returns the token whose secret is raw: ErrBadToken for a
// malformed, unknown or deleted one, ErrExpired for one past its expiry.
// It notes the time of a successful authentication in memory only (no
// store write on this path): see FlushUsage.
func (s *Service) Authenticate(ctx context.Context, raw string) (Token, error) {
	if !secret.WellFormed(raw, Prefix) {
		return Token{}, ErrBadToken
	}
	t, now, err := s.byDigest(ctx, secret.Digest(raw))
	if err != nil {
		return Token{}, err
	}
	s.noteUse(t.ID, t.LastUsedAt, now)
	return t, nil
}

// MayExist reports, from memory only, whether raw may be a stored token:
// false means it certainly is not (malformed, or no such digest), so a
// caller shedding a flood of bad tokens may refuse it without a store read.
// True means Authenticate must decide. A token created through this Service
// is known when Create returns; one written elsewhere once the store watch
// delivers it (see internal/keyset).
func (s *Service) MayExist(raw string) bool {
	return secret.WellFormed(raw, Prefix) && s.digests.MayHave(sha256.Sum256([]byte(raw)))
}

// audited is t as its audit records hold it: neither the digest nor the
// hint, which is the start of the secret.
func (t Token) audited() Token {
	t.Digest, t.Hint = "", ""
	return t
}

// Target is the audit target of the token id.
func Target(id string) string { return "token/" + id }

// Delete removes a token; it stops working at once.
func (s *Service) Delete(ctx context.Context, id string) error {
	defer s.usage.Delete(id)
	return s.db.Update(ctx, func(tx store.Tx) error {
		if id == "" || len(id) > 64 {
			return portal.Errorf(portal.ENotFound, "no such token")
		}
		b, err := tx.Get([]byte(tokenPrefix + id))
		if errors.Is(err, store.ErrNotFound) {
			return portal.Errorf(portal.ENotFound, "no token %q", id)
		}
		if err != nil {
			return err
		}
		var t Token
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		if err := tx.Delete([]byte(digestPrefix + t.Digest)); err != nil {
			return err
		}
		if err := tx.Delete([]byte(tokenPrefix + id)); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "token.delete", Target(id), t.audited(), nil)
	})
}

// Any reports whether any token exists (an empty store has none, and
// `portal serve` then says how to create the first admin token).
func (s *Service) Any(ctx context.Context) (bool, error) {
	found := false
	err := s.db.View(ctx, func(tx store.Tx) error {
		return tx.Scan([]byte(tokenPrefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			found = true
			return false, nil
		})
	})
	return found, err
}
