package signing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/portaldist/portal"
)

// MasterKeySize is the length of a master key in bytes (AES-256).
const MasterKeySize = 32

// Errors from Sealer.Open. They describe stored state or configuration, not
// caller input, so they are plain errors (an HTTP layer maps them to an
// internal error); test for them with errors.Is.
var (
	// ErrMalformedKey: the bytes are not a sealed key of a known format
	// (truncated, corrupted, or not written by Seal).
	ErrMalformedKey = errors.New("signing: malformed stored key")
	// ErrMasterKeyRequired: the key was encrypted with a master key but the
	// Sealer has none.
	ErrMasterKeyRequired = errors.New("signing: stored key is encrypted and no master key is configured")
	// ErrWrongMasterKey: the key was encrypted with another master key than
	// the configured one.
	ErrWrongMasterKey = errors.New("signing: stored key was encrypted with a different master key")
	// ErrUnseal: the master key matches but decryption failed: the key was
	// sealed for other associated data (for example another product), or
	// the stored bytes were altered.
	ErrUnseal = errors.New("signing: cannot decrypt stored key: wrong associated data or altered bytes")
	// ErrPlaintextKey: the key is stored in plaintext but a master key is
	// configured. Such a key is refused rather than used: with a master key
	// every genuine key is sealed (the portal seals them at start and
	// `portal keys seal` does it offline), so a plaintext one was planted by
	// someone who could write the store. Sealer.Reseal converts it.
	ErrPlaintextKey = errors.New("signing: stored key is in plaintext but a master key is configured: seal it (portal keys seal)")
	// ErrNothingStaged: Activate without a staged key set.
	ErrNothingStaged = errors.New("signing: no new key is staged: stage one first (portal keys rotate)")
)

// Stored key layout. All forms start with the same header:
//
//	"PSK" | version (1) | mode (1) | key id (8, wire order) | public key (32)
//
// Version 1 is a shared key: the seed's key pair signs both Sparkle files
// and minisign digests (the portal's first format; see KeySet). Version 2 is
// a split key set: the seed's key pair signs Sparkle files, and the minisign
// key is derived from the seed (deriveMinisign) and has the stored key id.
// The public key stored is always the seed's.
//
// mode 'P' (plaintext) continues with
//
//	seed (32) | check (8) = SHA-256(everything before)[:8]
//
// The check catches corruption (a flipped key-id byte would otherwise go
// unnoticed until verifiers reject every signature); it is no protection
// against someone who can write the store.
//
// mode 'G' (AES-256-GCM) continues with
//
//	master key id (4) | nonce (12) | AES-256-GCM(seed) (32 + 16 tag)
//
// The GCM additional data is everything before the nonce (header and master
// key id) followed by the caller's associated data, so neither the public
// half, the key id, nor the product the key belongs to can be swapped
// without Open failing. The header has a fixed length, so the concatenation
// is unambiguous.
const (
	sealMagic    = "PSK"
	sealVersion  = 1 // shared key
	splitVersion = 2 // split key set
	modePlain    = 'P'
	modeGCM      = 'G'

	headerLen     = len(sealMagic) + 1 + 1 + 8 + ed25519.PublicKeySize // 45
	checkLen      = 8
	plainLen      = headerLen + ed25519.SeedSize + checkLen // 85
	masterIDLen   = 4
	nonceLen      = 12
	sealedDataLen = ed25519.SeedSize + 16
	gcmLen        = headerLen + masterIDLen + nonceLen + sealedDataLen // 109
)

// HKDF labels: the configured master key may serve other purposes in the
// portal too, so this package only ever uses keys derived from it.
const (
	hkdfInfoSealKey  = "portal/signing/seal-key/v1"
	hkdfInfoMasterID = "portal/signing/master-key-id/v1"
)

// Sealer turns a Key into bytes to store and back.
//
// With a master key, the private key (its 32-byte seed) is encrypted with
// AES-256-GCM under a key derived from the master key, with a random nonce,
// bound to the Sealer's associated data (see For). Without one, it is stored
// in plaintext, marked as such; see the package documentation for that
// trade-off and for enabling a master key later.
//
// A Sealer is immutable and safe for concurrent use. The zero Sealer stores
// plaintext, like NewSealer(nil).
type Sealer struct {
	aead     cipher.AEAD // nil without a master key
	masterID [masterIDLen]byte
	ad       string
}

// NewSealer returns a Sealer for masterKey, which must be MasterKeySize bytes
// or empty (nil) for plaintext storage. The Sealer binds the empty
// associated data; use For to bind a product.
func NewSealer(masterKey []byte) (*Sealer, error) {
	if len(masterKey) == 0 {
		return &Sealer{}, nil
	}
	if len(masterKey) != MasterKeySize {
		return nil, portal.Errorf(portal.EInvalid, "signing master key must be %d bytes, got %d", MasterKeySize, len(masterKey))
	}
	sealKey, err := hkdf.Key(sha256.New, masterKey, nil, hkdfInfoSealKey, 32)
	if err != nil {
		return nil, fmt.Errorf("signing: derive seal key: %w", err)
	}
	id, err := hkdf.Key(sha256.New, masterKey, nil, hkdfInfoMasterID, masterIDLen)
	if err != nil {
		return nil, fmt.Errorf("signing: derive master key id: %w", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	s := &Sealer{aead: aead}
	copy(s.masterID[:], id)
	return s, nil
}

// For returns a Sealer with the same master key bound to associatedData,
// typically the product slug: a key sealed for one product then cannot be
// opened as another product's key. It is cheap (no key derivation).
//
// Without a master key the associated data is not checked: plaintext storage
// offers no such binding.
func (s *Sealer) For(associatedData string) *Sealer {
	c := *s
	c.ad = associatedData
	return &c
}

// Encrypts reports whether Seal encrypts, that is whether a master key is
// configured.
func (s *Sealer) Encrypts() bool { return s.aead != nil }

// Seal returns the stored form of k. Each call encrypts with a fresh random
// nonce, so sealing the same key twice gives different bytes.
//
// The stored form is that of a shared key (version 1), the one Open returns;
// SealSet stores a KeySet.
func (s *Sealer) Seal(k *Key) ([]byte, error) {
	return s.seal(sealVersion, k)
}

func (s *Sealer) seal(version byte, k *Key) ([]byte, error) {
	if !k.usable() {
		return nil, portal.Errorf(portal.EInvalid, "signing: cannot seal an unusable key")
	}
	b := make([]byte, 0, gcmLen)
	b = append(b, sealMagic...)
	b = append(b, version, s.mode())
	b = append(b, k.id[:]...)
	b = append(b, k.PublicKey()...)
	return s.sealAfter(b, k.priv.Seed())
}

// mode is the mode byte of what s seals: modeGCM with a master key,
// modePlain without.
func (s *Sealer) mode() byte {
	if s.aead != nil {
		return modeGCM
	}
	return modePlain
}

// sealAfter appends secret to header, the sealed form's header up to and
// including its mode byte: in the clear with a SHA-256 check, or, with a
// master key, after the master key's ID and a nonce, encrypted with the
// whole header (and s.ad) as additional data.
func (s *Sealer) sealAfter(header, secret []byte) ([]byte, error) {
	b := header
	if s.aead == nil {
		b = append(b, secret...)
		sum := sha256.Sum256(b)
		return append(b, sum[:checkLen]...), nil
	}
	b = append(b, s.masterID[:]...)
	ad := s.additionalData(b)
	nonce := make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("signing: seal: %w", err)
	}
	b = append(b, nonce...)
	return s.aead.Seal(b, nonce, secret, ad), nil
}

func (s *Sealer) additionalData(prefix []byte) []byte {
	ad := make([]byte, 0, len(prefix)+len(s.ad))
	ad = append(ad, prefix...)
	return append(ad, s.ad...)
}

// Open returns the Key stored in b by Seal (a shared key, version 1); a
// split key set (SealSet) is opened with OpenSet.
//
// A plaintext key opens only without a master key: with one configured it
// fails with ErrPlaintextKey (NeedsReseal reports it, Reseal converts it).
// An encrypted key needs the master key and associated data it was sealed
// with; otherwise Open fails with ErrMasterKeyRequired, ErrWrongMasterKey or
// ErrUnseal. Truncated or corrupted bytes fail with ErrMalformedKey.
func (s *Sealer) Open(b []byte) (*Key, error) {
	v, k, err := s.open(b, false)
	if err != nil {
		return nil, err
	}
	if v != sealVersion {
		return nil, fmt.Errorf("%w: a split key set, not a single key (use OpenSet)", ErrMalformedKey)
	}
	return k, nil
}

// Reseal returns b in the form Seal would produce now: a plaintext key
// (which Open refuses under a master key) is encrypted, keeping its key id,
// its version and so its public keys. An encrypted key must open with this
// Sealer and is returned sealed again. It is how `portal keys seal` and the
// sealing at start migrate a store when a master key is enabled.
func (s *Sealer) Reseal(b []byte) ([]byte, error) {
	v, k, err := s.open(b, true)
	if err != nil {
		return nil, err
	}
	return s.seal(v, k)
}

// open returns the version and the seed's Key stored in b. allowPlain opens a
// plaintext key even under a master key.
func (s *Sealer) open(b []byte, allowPlain bool) (byte, *Key, error) {
	if len(b) < headerLen || string(b[:len(sealMagic)]) != sealMagic {
		return 0, nil, fmt.Errorf("%w: unknown format", ErrMalformedKey)
	}
	if b[3] != sealVersion && b[3] != splitVersion {
		return 0, nil, fmt.Errorf("%w: unknown version %d", ErrMalformedKey, b[3])
	}
	var id [8]byte
	copy(id[:], b[5:13])
	pub := b[13:headerLen]

	var seed []byte
	switch b[4] {
	case modePlain:
		if len(b) != plainLen {
			return 0, nil, fmt.Errorf("%w: plaintext key has %d bytes, want %d", ErrMalformedKey, len(b), plainLen)
		}
		sum := sha256.Sum256(b[:plainLen-checkLen])
		if subtle.ConstantTimeCompare(sum[:checkLen], b[plainLen-checkLen:]) != 1 {
			return 0, nil, fmt.Errorf("%w: checksum mismatch", ErrMalformedKey)
		}
		if s.aead != nil && !allowPlain {
			return 0, nil, ErrPlaintextKey
		}
		seed = b[headerLen : headerLen+ed25519.SeedSize]
	case modeGCM:
		if len(b) != gcmLen {
			return 0, nil, fmt.Errorf("%w: encrypted key has %d bytes, want %d", ErrMalformedKey, len(b), gcmLen)
		}
		if s.aead == nil {
			return 0, nil, ErrMasterKeyRequired
		}
		mid := b[headerLen : headerLen+masterIDLen]
		// Not a secret, but compared like one all the same (security rule 2).
		if subtle.ConstantTimeCompare(mid, s.masterID[:]) != 1 {
			return 0, nil, ErrWrongMasterKey
		}
		nonce := b[headerLen+masterIDLen : headerLen+masterIDLen+nonceLen]
		ad := s.additionalData(b[:headerLen+masterIDLen])
		var err error
		seed, err = s.aead.Open(nil, nonce, b[headerLen+masterIDLen+nonceLen:], ad)
		if err != nil {
			return 0, nil, ErrUnseal
		}
	default:
		return 0, nil, fmt.Errorf("%w: unknown mode %q", ErrMalformedKey, b[4])
	}

	k := newKey(id, seed)
	// The stored public key must be the one the seed derives: a mismatch
	// means corruption, and publishing a public key that does not match the
	// signatures would break every client.
	if subtle.ConstantTimeCompare(k.PublicKey(), pub) != 1 {
		return 0, nil, fmt.Errorf("%w: public key does not match private key", ErrMalformedKey)
	}
	return b[3], k, nil
}

// NeedsReseal reports whether b is not in the form Seal would produce now: a
// plaintext key while a master key is configured, which Open refuses. The
// caller should then store Reseal's output in its place.
func (s *Sealer) NeedsReseal(b []byte) bool {
	return s.aead != nil && len(b) > 4 && string(b[:len(sealMagic)]) == sealMagic && b[4] == modePlain
}

// ParseMasterKey decodes a master key from configuration: standard or URL
// base64, padded or not, surrounding whitespace ignored, exactly
// MasterKeySize bytes once decoded. An empty (or all-space) s means "no
// master key" and returns nil, nil. Errors never quote s.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var key []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil {
			key = b
			break
		}
	}
	if key == nil {
		return nil, portal.Errorf(portal.EInvalid, "signing master key is not valid base64")
	}
	if len(key) != MasterKeySize {
		return nil, portal.Errorf(portal.EInvalid, "signing master key must decode to %d bytes, got %d", MasterKeySize, len(key))
	}
	return key, nil
}

// NewMasterKey returns a fresh random master key in the form ParseMasterKey
// reads (standard base64), for an operator to put in the configuration.
func NewMasterKey() (string, error) {
	b := make([]byte, MasterKeySize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("signing: new master key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
