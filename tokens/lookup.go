package tokens

import (
	"context"
	"encoding/json"
	"errors"

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
		return Token{}, err
	}
	if t.ExpiresAt != nil && !s.now().Before(*t.ExpiresAt) {
		return Token{}, ErrExpired
	}
	return t, nil
}
