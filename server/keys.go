package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// ProductKeys makes, seals, opens and rotates the products' signing keys,
// which are stored sealed on the product record (see signing.Sealer: bound
// to the product's slug, encrypted when a master key is configured; and
// signing.KeySet for the one-key-per-scheme split).
type ProductKeys struct {
	Catalog *releases.Service
	// Sealer nil stores keys unencrypted, protected by the data
	// directory's permissions.
	Sealer *signing.Sealer
	// Now is the clock of rotations (default time.Now).
	Now func() time.Time
	// OpenPGPAlgorithm is the algorithm of new products' OpenPGP keys
	// (signing.ParseOpenPGPAlgorithm; "" is ed25519): config
	// repos.openpgp_algorithm.
	OpenPGPAlgorithm string
}

func (k ProductKeys) sealer(product string) *signing.Sealer {
	if k.Sealer == nil {
		sl, _ := signing.NewSealer(nil)
		return sl.For(product)
	}
	return k.Sealer.For(product)
}

// New makes a split key set and an OpenPGP key for the product and returns
// them sealed for storage.
func (k ProductKeys) New(slug string) ([]byte, error) {
	ks, err := signing.GenerateKeySet()
	if err != nil {
		return nil, fmt.Errorf("server: signing key: %w", err)
	}
	b, err := k.sealer(slug).SealSet(ks)
	if err != nil {
		return nil, err
	}
	pgp, err := k.newOpenPGP(slug)
	if err != nil {
		return nil, err
	}
	return k.sealer(slug).WithOpenPGP(b, pgp)
}

func (k ProductKeys) newOpenPGP(slug string) (*signing.OpenPGPKey, error) {
	now := time.Now
	if k.Now != nil {
		now = k.Now
	}
	pgp, err := signing.GenerateOpenPGPKey(k.OpenPGPAlgorithm, slug+" package repository signing key", now())
	if err != nil {
		return nil, fmt.Errorf("server: OpenPGP key: %w", err)
	}
	return pgp, nil
}

// OpenPGP opens the product's OpenPGP key, which signs its package
// repositories. A product made before repository signing gets one on
// first need (stored and audited as product.update_keys); concurrent first
// needs, on this replica or another, end with the one key stored first.
func (k ProductKeys) OpenPGP(ctx context.Context, product string) (*signing.OpenPGPKey, error) {
	b, err := k.stored(ctx, product)
	if err != nil {
		return nil, err
	}
	key, err := k.sealer(product).OpenPGP(b)
	if !errors.Is(err, signing.ErrNoOpenPGPKey) {
		return key, err
	}
	err = k.change(ctx, product, func(b []byte) ([]byte, error) {
		if _, err := k.sealer(product).OpenPGP(b); !errors.Is(err, signing.ErrNoOpenPGPKey) {
			return b, err // made meanwhile: keep it
		}
		pgp, err := k.newOpenPGP(product)
		if err != nil {
			return nil, err
		}
		return k.sealer(product).WithOpenPGP(b, pgp)
	})
	if err != nil {
		return nil, err
	}
	if b, err = k.stored(ctx, product); err != nil {
		return nil, err
	}
	return k.sealer(product).OpenPGP(b)
}

// stored returns the product's stored keys.
func (k ProductKeys) stored(ctx context.Context, product string) ([]byte, error) {
	p, err := k.Catalog.Product(ctx, product)
	if err != nil {
		return nil, err
	}
	if len(p.SigningKey) == 0 {
		return nil, fmt.Errorf("server: product %s has no signing key", product)
	}
	return p.SigningKey, nil
}

// SigningKeys opens the product's current key set, the one that signs.
func (k ProductKeys) SigningKeys(ctx context.Context, product string) (*signing.KeySet, error) {
	b, err := k.stored(ctx, product)
	if err != nil {
		return nil, err
	}
	return k.sealer(product).Current(b)
}

// Describe returns the public keys of the product: current, staged by a
// rotation, and previous.
func (k ProductKeys) Describe(ctx context.Context, product string) (signing.Keys, error) {
	b, err := k.stored(ctx, product)
	if err != nil {
		return signing.Keys{}, err
	}
	return k.sealer(product).Describe(b)
}

// change applies fn to the product's stored keys and stores the result if
// it differs, unless the stored keys changed meanwhile (then it tries again,
// a few times). fn must not have effects beyond its result.
func (k ProductKeys) change(ctx context.Context, product string, fn func(stored []byte) ([]byte, error)) error {
	for range 5 {
		b, err := k.stored(ctx, product)
		if err != nil {
			return err
		}
		out, err := fn(b)
		if err != nil {
			return err
		}
		if string(out) == string(b) {
			return nil
		}
		err = k.Catalog.ReplaceSigningKey(ctx, product, b, out)
		if !portal.IsCode(err, portal.EConflict) {
			return err
		}
	}
	return portal.Errorf(portal.EConflict, "the signing keys of %s keep changing: try again", product)
}

// SealAll seals, under the master key, every plaintext key of every
// product, logging a line per product sealed, and returns how many it
// sealed. Without a master key it does nothing. Public keys do not change.
// It stops at the first product whose keys do not open.
func (k ProductKeys) SealAll(ctx context.Context, log *slog.Logger) (int, error) {
	if k.Sealer == nil || !k.Sealer.Encrypts() {
		return 0, nil
	}
	all, err := k.Catalog.Products(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range all {
		if !k.sealer(p.Slug).NeedsResealStored(p.SigningKey) {
			continue
		}
		err := k.change(ctx, p.Slug, func(b []byte) ([]byte, error) {
			out, _, err := k.sealer(p.Slug).ResealStored(b)
			return out, err
		})
		if err != nil {
			return n, fmt.Errorf("seal the signing keys of %s: %w", p.Slug, err)
		}
		n++
		log.Info("signing key sealed with the master key", "product", p.Slug)
	}
	return n, nil
}

// OpenPGPSigners returns the OpenPGP keys that sign the product's
// repositories: the current one (made on first need, see OpenPGP), and the
// staged one beside it while a rotation is staged.
func (k ProductKeys) OpenPGPSigners(ctx context.Context, product string) ([]*signing.OpenPGPKey, error) {
	if _, err := k.OpenPGP(ctx, product); err != nil {
		return nil, err
	}
	b, err := k.stored(ctx, product)
	if err != nil {
		return nil, err
	}
	return k.sealer(product).OpenPGPSigners(b)
}

// StageOpenPGP is the first step of an OpenPGP key rotation: a new key
// (of the configured algorithm) is published beside the current one and
// signs beside it, so customers can add it to their keyrings; the current
// one keeps signing. While a key is staged it returns that one (created
// false).
func (k ProductKeys) StageOpenPGP(ctx context.Context, product string) (next *signing.OpenPGPKey, created bool, err error) {
	if _, err := k.OpenPGP(ctx, product); err != nil {
		return nil, false, err
	}
	fresh, err := k.newOpenPGP(product)
	if err != nil {
		return nil, false, err
	}
	err = k.change(ctx, product, func(b []byte) ([]byte, error) {
		out, staged, c, err := k.sealer(product).StageOpenPGP(b, fresh)
		next, created = staged, c
		return out, err
	})
	return next, created, err
}

// ActivateOpenPGP is the second step: the staged OpenPGP key signs alone
// from now on; clients that trust only the old key stop verifying.
func (k ProductKeys) ActivateOpenPGP(ctx context.Context, product string) (*signing.OpenPGPKey, error) {
	var cur *signing.OpenPGPKey
	err := k.change(ctx, product, func(b []byte) ([]byte, error) {
		out, key, err := k.sealer(product).ActivateOpenPGP(b)
		cur = key
		return out, err
	})
	if errors.Is(err, signing.ErrNothingStaged) {
		return nil, portal.Errorf(portal.EConflict, "%s has no staged OpenPGP key: run portal keys rotate --openpgp --product %s first", product, product)
	}
	return cur, err
}

// Stage is the first step of a rotation: it adds a new split key set as the
// product's next keys, published by /keys so that a transition release can
// carry them, and returns their public keys; the current keys keep signing.
// While a set is staged it returns that one (created false).
func (k ProductKeys) Stage(ctx context.Context, product string) (next signing.PublicKeys, created bool, err error) {
	err = k.change(ctx, product, func(b []byte) ([]byte, error) {
		out, pub, c, err := k.sealer(product).Stage(b)
		next, created = pub, c
		return out, err
	})
	return next, created, err
}

// Activate is the second step of a rotation: the staged keys sign from now
// on, and the replaced ones are listed by /keys as previous. Signatures
// made before stay as they are.
func (k ProductKeys) Activate(ctx context.Context, product string) (signing.PublicKeys, error) {
	now := time.Now
	if k.Now != nil {
		now = k.Now
	}
	var cur signing.PublicKeys
	err := k.change(ctx, product, func(b []byte) ([]byte, error) {
		out, pub, err := k.sealer(product).Activate(b, now())
		cur = pub
		return out, err
	})
	if errors.Is(err, signing.ErrNothingStaged) {
		return cur, portal.Errorf(portal.EConflict, "%s has no staged key: run portal keys rotate --product %s first", product, product)
	}
	return cur, err
}

// keys answers GET /v1/products/{product}/keys: the product's public
// signing keys in the forms update clients take (Sparkle's SUPublicEDKey,
// minisign's public key line and .pub file, Tauri's pubkey), at the top level
// for the keys that sign now; "next" for keys a rotation has staged (to
// embed in a transition release), "previous" for keys a rotation replaced.
// "openpgp" is the key that signs the product's APT and YUM repositories
// (also served as /apt/{product}/key.asc and key.gpg).
// "separate_keys" is false while one key signs both Sparkle files and
// minisign digests (products made before the split; see signing.KeySet).
func (s *Server) keys(c *gin.Context) {
	p, err := s.Catalog.Product(c, c.Param("product"))
	if err != nil {
		s.fail(c, err)
		return
	}
	// The OpenPGP key is made here for products that have none yet, so
	// /keys always shows it.
	if _, err := s.Keys.OpenPGP(c, p.Slug); err != nil {
		s.fail(c, err)
		return
	}
	d, err := s.Keys.Describe(c, p.Slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := gin.H{"product": p.Slug, "algorithm": "ed25519", "ed25519": d.Current.Sparkle}
	for k, v := range publicKeysJSON(d.Current) {
		out[k] = v
	}
	out["separate_keys"] = d.Current.Separate
	delete(out, "separate")
	if d.Next != nil {
		out["next"] = publicKeysJSON(*d.Next)
	}
	prev := make([]gin.H, 0, len(d.Previous))
	for _, pk := range d.Previous {
		prev = append(prev, publicKeysJSON(pk))
	}
	out["previous"] = prev
	if d.OpenPGP != nil {
		pgp := openpgpJSON(d.OpenPGP)
		if d.OpenPGPNext != nil {
			pgp["next"] = openpgpJSON(d.OpenPGPNext)
		}
		prev := d.OpenPGPPrevious
		if prev == nil {
			prev = []string{}
		}
		pgp["previous_fingerprints"] = prev
		out["openpgp"] = pgp
	}
	c.PureJSON(http.StatusOK, out)
}

func openpgpJSON(p *signing.OpenPGPPublic) gin.H {
	return gin.H{"algorithm": p.Algorithm, "fingerprint": p.Fingerprint, "key_id": p.KeyID, "armored": p.Armored}
}

func publicKeysJSON(pk signing.PublicKeys) gin.H {
	h := gin.H{
		"sparkle":         pk.Sparkle,
		"minisign":        pk.Minisign,
		"minisign_key_id": pk.MinisignKeyID,
		"minisign_pub":    pk.MinisignPub,
		"tauri_pubkey":    pk.TauriPubkey(),
		"separate":        pk.Separate,
	}
	if pk.RetiredAt != nil {
		h["retired_at"] = pk.RetiredAt.UTC().Format(time.RFC3339)
	}
	return h
}
