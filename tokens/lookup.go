package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store"
)

// ByDigest returns the token whose digest (Token.Digest, the SHA-256 of its
// secret) is digest: ErrBadToken once it is deleted, ErrExpired past its
// expiry. It is for a door that authenticated the secret once with
// Authenticate and keeps only the digest, such as a web session, to learn
// on each later request whether the token still stands. It notes no use.
func (s *Service) ByDigest(ctx context.Context, digest string) (Token, error) {
	if len(digest) != 64 {
		return Token{}, ErrBadToken
	}
	t, _, err := s.byDigest(ctx, digest)
	return t, err
}

// byDigest reads the token whose digest is digest, as ByDigest and
// Authenticate answer it, and returns the time its expiry was judged at.
func (s *Service) byDigest(ctx context.Context, digest string) (Token, time.Time, error) {
	var t Token
	err := s.db.View(ctx, func(tx store.Tx) error {
		id, err := tx.Get([]byte(digestPrefix + digest))
		if errors.Is(err, store.ErrNotFound) {
			return ErrBadToken
		}
		if err != nil {
			return err
		}
		b, err := tx.Get([]byte(tokenPrefix + string(id)))
		if errors.Is(err, store.ErrNotFound) {
			return ErrBadToken
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		if !secret.Equal(t.Digest, digest) {
			return ErrBadToken
		}
		return nil
	})
	if err != nil {
		return Token{}, time.Time{}, err
	}
	now := s.now()
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return Token{}, time.Time{}, ErrExpired
	}
	return t, now, nil
}
