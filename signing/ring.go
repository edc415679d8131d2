package signing

import (
	"encoding/json"
	"fmt"
	"time"
)

// A product's stored signing keys (the bytes on the product record) are
// either one sealed KeySet (what SealSet returns, "PSK..."), or a ring:
//
//	"PKR" | 1 | JSON {"current": sealed, "next": sealed?, "previous": [PublicKeys...]}
//
// A ring appears with the first rotation. "next" is the set a rotation has
// staged: its public keys are published so that a transition release can
// carry them, but the portal keeps signing with "current" until the
// rotation is activated. "previous" lists the public keys of the sets a
// rotation replaced, newest first, for clients still in transition. The
// staged set is sealed for other associated data than the current one
// (the product, then "\x00next"), so the two cannot be swapped in the store
// without the master key. The previous public keys are informational: the
// portal signs nothing with them.
const (
	ringMagic   = "PKR"
	ringVersion = 1
	// MaxPreviousKeys bounds the previous sets a ring remembers.
	MaxPreviousKeys = 8
)

type ring struct {
	Current  []byte       `json:"current"`
	Next     []byte       `json:"next,omitempty"`
	Previous []PublicKeys `json:"previous,omitempty"`
	// OpenPGP is the product's sealed OpenPGP key (SealOpenPGP), which
	// signs package repository metadata; nil until first needed. Rotating
	// the Ed25519 sets leaves it as it is.
	OpenPGP []byte `json:"openpgp,omitempty"`
	// OpenPGPNext is an OpenPGP key a rotation has staged (sealed for the
	// product and "\x00openpgp\x00next"): published beside the current
	// one, and signing beside it, until the rotation is activated.
	OpenPGPNext []byte `json:"openpgp_next,omitempty"`
	// OpenPGPPrevious are the fingerprints of OpenPGP keys rotations
	// replaced, newest first (informational).
	OpenPGPPrevious []string `json:"openpgp_previous,omitempty"`
}

func parseRing(b []byte) (ring, error) {
	if len(b) >= len(sealMagic) && string(b[:len(sealMagic)]) == sealMagic {
		return ring{Current: b}, nil
	}
	if len(b) < len(ringMagic)+1 || string(b[:len(ringMagic)]) != ringMagic || b[len(ringMagic)] != ringVersion {
		return ring{}, fmt.Errorf("%w: unknown format", ErrMalformedKey)
	}
	var r ring
	if err := json.Unmarshal(b[len(ringMagic)+1:], &r); err != nil || len(r.Current) == 0 {
		return ring{}, fmt.Errorf("%w: malformed key ring", ErrMalformedKey)
	}
	return r, nil
}

func (r ring) bytes() []byte {
	if r.Next == nil && len(r.Previous) == 0 && r.OpenPGP == nil && r.OpenPGPNext == nil && len(r.OpenPGPPrevious) == 0 {
		return r.Current
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // cannot happen: byte slices and strings only
	}
	return append([]byte(ringMagic+"\x01"), b...)
}

func (s *Sealer) forNext() *Sealer { return s.For(s.ad + "\x00next") }

// Current opens the KeySet that signs, from a product's stored keys (a
// sealed KeySet or a ring). The Sealer must be bound to the product (For).
// It fails like Open, and with ErrMalformedKey on a malformed ring.
func (s *Sealer) Current(stored []byte) (*KeySet, error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, err
	}
	return s.OpenSet(r.Current)
}

// Keys describes a product's stored keys: the public keys of the current
// set, of the set a rotation staged (nil if none), and of the previous ones.
type Keys struct {
	Current  PublicKeys
	Next     *PublicKeys
	Previous []PublicKeys
	// OpenPGP is the repository signing key, nil while the product has none.
	OpenPGP *OpenPGPPublic
	// OpenPGPNext is the OpenPGP key a rotation staged, nil if none;
	// OpenPGPPrevious the fingerprints of the keys rotations replaced.
	OpenPGPNext     *OpenPGPPublic
	OpenPGPPrevious []string
}

// Describe opens a product's stored keys and returns their public halves.
func (s *Sealer) Describe(stored []byte) (Keys, error) {
	r, err := parseRing(stored)
	if err != nil {
		return Keys{}, err
	}
	cur, err := s.OpenSet(r.Current)
	if err != nil {
		return Keys{}, err
	}
	out := Keys{Current: cur.Public(), Previous: r.Previous}
	if r.Next != nil {
		next, err := s.forNext().OpenSet(r.Next)
		if err != nil {
			return Keys{}, fmt.Errorf("staged key: %w", err)
		}
		p := next.Public()
		out.Next = &p
	}
	if r.OpenPGP != nil {
		k, err := s.OpenOpenPGP(r.OpenPGP)
		if err != nil {
			return Keys{}, fmt.Errorf("OpenPGP key: %w", err)
		}
		p := k.Public()
		out.OpenPGP = &p
	}
	if r.OpenPGPNext != nil {
		k, err := s.forNextOpenPGP().openOpenPGP(r.OpenPGPNext, false)
		if err != nil {
			return Keys{}, fmt.Errorf("staged OpenPGP key: %w", err)
		}
		p := k.Public()
		out.OpenPGPNext = &p
	}
	out.OpenPGPPrevious = r.OpenPGPPrevious
	return out, nil
}

// NeedsResealStored reports whether a product's stored keys hold a
// plaintext key while the Sealer has a master key.
func (s *Sealer) NeedsResealStored(stored []byte) bool {
	r, err := parseRing(stored)
	if err != nil {
		return false
	}
	return s.NeedsReseal(r.Current) || (r.Next != nil && s.NeedsReseal(r.Next)) ||
		(r.OpenPGP != nil && s.needsResealOpenPGP(r.OpenPGP)) ||
		(r.OpenPGPNext != nil && s.needsResealOpenPGP(r.OpenPGPNext))
}

// ResealStored returns a product's stored keys with every plaintext key
// sealed under the master key (Reseal), and whether anything changed. Public
// keys, and so every client's pinned key, stay the same.
func (s *Sealer) ResealStored(stored []byte) ([]byte, bool, error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, false, err
	}
	changed := false
	if s.NeedsReseal(r.Current) {
		if r.Current, err = s.Reseal(r.Current); err != nil {
			return nil, false, err
		}
		changed = true
	}
	if r.Next != nil && s.NeedsReseal(r.Next) {
		if r.Next, err = s.forNext().Reseal(r.Next); err != nil {
			return nil, false, fmt.Errorf("staged key: %w", err)
		}
		changed = true
	}
	if r.OpenPGP != nil && s.needsResealOpenPGP(r.OpenPGP) {
		if r.OpenPGP, err = s.resealOpenPGP(r.OpenPGP); err != nil {
			return nil, false, fmt.Errorf("OpenPGP key: %w", err)
		}
		changed = true
	}
	if r.OpenPGPNext != nil && s.needsResealOpenPGP(r.OpenPGPNext) {
		k, err := s.forNextOpenPGP().openOpenPGP(r.OpenPGPNext, true)
		if err != nil {
			return nil, false, fmt.Errorf("staged OpenPGP key: %w", err)
		}
		if r.OpenPGPNext, err = s.sealNextOpenPGP(k); err != nil {
			return nil, false, err
		}
		changed = true
	}
	if !changed {
		return stored, false, nil
	}
	return r.bytes(), true, nil
}

// Stage is the first step of a rotation: it adds a new split KeySet as the
// staged next set and returns the stored keys and the new set's public
// keys. The current set keeps signing. Staging again while a set is staged
// returns the staged one unchanged (created false).
func (s *Sealer) Stage(stored []byte) (out []byte, next PublicKeys, created bool, err error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, PublicKeys{}, false, err
	}
	if _, err := s.OpenSet(r.Current); err != nil {
		return nil, PublicKeys{}, false, err
	}
	if r.Next != nil {
		ks, err := s.forNext().OpenSet(r.Next)
		if err != nil {
			return nil, PublicKeys{}, false, fmt.Errorf("staged key: %w", err)
		}
		return stored, ks.Public(), false, nil
	}
	ks, err := GenerateKeySet()
	if err != nil {
		return nil, PublicKeys{}, false, err
	}
	if r.Next, err = s.forNext().SealSet(ks); err != nil {
		return nil, PublicKeys{}, false, err
	}
	return r.bytes(), ks.Public(), true, nil
}

// Activate is the second step of a rotation: the staged set becomes the
// current one, and the current one's public keys go first in the previous
// list (retired at now; at most MaxPreviousKeys are kept). Without a staged
// set it fails with ErrNothingStaged.
func (s *Sealer) Activate(stored []byte, now time.Time) ([]byte, PublicKeys, error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, PublicKeys{}, err
	}
	if r.Next == nil {
		return nil, PublicKeys{}, ErrNothingStaged
	}
	cur, err := s.OpenSet(r.Current)
	if err != nil {
		return nil, PublicKeys{}, err
	}
	next, err := s.forNext().OpenSet(r.Next)
	if err != nil {
		return nil, PublicKeys{}, fmt.Errorf("staged key: %w", err)
	}
	if r.Current, err = s.SealSet(next); err != nil {
		return nil, PublicKeys{}, err
	}
	r.Next = nil
	old := cur.Public()
	t := now.UTC()
	old.RetiredAt = &t
	r.Previous = append([]PublicKeys{old}, r.Previous...)
	if len(r.Previous) > MaxPreviousKeys {
		r.Previous = r.Previous[:MaxPreviousKeys]
	}
	return r.bytes(), next.Public(), nil
}
