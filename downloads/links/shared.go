package links

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/internal/hmacpool"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/store"
)

// secretKey holds the link secret every process on the store shares: a
// signing key sealed by the configured master key (see SharedSecret). It
// is under the links' prefix, but not a link: List and Purge skip it.
const secretKey = recordPrefix + "secret"

// ActionSecretCreate records the creation of the shared link secret (its
// value is never recorded).
const ActionSecretCreate = "link.secret_create"

// ActionSecretSeal records the sealing, under a master key configured
// since, of a shared link secret stored in plaintext.
const ActionSecretSeal = "link.secret_seal"

// SharedSecret returns the secret that signs share links, kept in the store
// so that every replica on it signs and verifies with the same one, and a
// backup of the store carries it. It is created on first call: a random
// signing key, sealed by sealer (encrypted under the master key, or in
// plaintext without one, like the products' signing keys), and the secret
// is derived from it. Concurrent first calls, from any replica, agree on
// one (the store's transaction decides). When a master key is configured
// after the secret was stored in plaintext, the stored copy is sealed. The
// creation and the sealing are audited, with ctx's actor.
func SharedSecret(ctx context.Context, db store.DB, sealer *signing.Sealer) ([]byte, error) {
	sl := sealer.For("share link secret")
	fresh, err := signing.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("links: shared secret: %w", err)
	}
	sealedFresh, err := sl.Seal(fresh)
	if err != nil {
		return nil, fmt.Errorf("links: shared secret: %w", err)
	}
	var stored []byte
	read := func(tx store.Tx) error {
		b, err := tx.Get([]byte(secretKey))
		if errors.Is(err, store.ErrNotFound) {
			b = nil
		} else if err != nil {
			return err
		}
		stored = b
		return nil
	}
	if err := db.View(ctx, read); err != nil {
		return nil, fmt.Errorf("links: shared secret: %w", err)
	}
	if stored == nil || sl.NeedsReseal(stored) {
		err := db.Update(ctx, func(tx store.Tx) error {
			if err := read(tx); err != nil {
				return err
			}
			switch {
			case stored == nil:
				stored = sealedFresh
				if err := tx.Put([]byte(secretKey), stored); err != nil {
					return err
				}
				return audit.Write(ctx, tx, ActionSecretCreate, "links", nil, map[string]bool{"sealed": sl.Encrypts()})
			case sl.NeedsReseal(stored):
				b, err := sl.Reseal(stored)
				if err != nil {
					return err
				}
				stored = b
				if err := tx.Put([]byte(secretKey), stored); err != nil {
					return err
				}
				return audit.Write(ctx, tx, ActionSecretSeal, "links", nil, map[string]bool{"sealed": true})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("links: shared secret: %w", err)
		}
	}
	k, err := sl.Open(stored)
	if err != nil {
		return nil, fmt.Errorf("links: open the shared secret: %w", err)
	}
	// An Ed25519 signature is deterministic: signing a fixed label is a
	// function of the private key only, hashed into the HMAC key.
	label := "portal share link secret v1"
	sum := sha256.Sum256([]byte(label + "\x00" + k.SparkleSign([]byte(label))))
	return sum[:], nil
}

// ReadSecretFile returns the secret in a file written by LoadOrCreateSecret
// (the links' secret before it moved into the store), or an error wrapping
// fs.ErrNotExist when there is none. It creates nothing.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := readSecret(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return b, err
}

// AcceptAlso makes Verify accept, besides the links signed with the
// service's secret, those signed with old (at least MinSecretLen bytes): the
// links minted before the secret changed keep working until they expire
// (at most MaxTTL). New links are signed with the service's secret. Call
// it before the service is used.
func (s *Service) AcceptAlso(old []byte) {
	if len(old) >= MinSecretLen && !hmac.Equal(old, s.secret) {
		s.old = append([]byte(nil), old...)
		s.oldMAC = hmacpool.New(old)
	}
}
