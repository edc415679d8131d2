package signing

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"
)

// KeySet is a product's signing keys: Sparkle signs raw files with one key,
// minisign signs BLAKE2b-512 digests (and its trusted comments) with another.
//
// Why two: with a single key, signing a publisher's raw file is also
// signing whatever minisign message those bytes spell. A 64-byte upload
// equal to BLAKE2b-512(M) would get, as its Sparkle signature, a valid
// minisign signature of a file M the portal never saw, and a second upload
// of that signature followed by a trusted comment would give the global
// signature too. Separate keys close that for good.
//
// New products get a split set (GenerateKeySet): the Sparkle key is a fresh
// Ed25519 key and the minisign key is derived from its seed with HKDF-SHA256
// under the label "portal/signing/minisign-key/v1", so a sealed set is still
// one 32-byte seed. Products created before this scheme have a shared set
// (one key for both, Separate false): their public keys are pinned in the
// apps already shipped, so the portal keeps them, refuses to Sparkle-sign
// files small enough to be a minisign message (SparkleSigns), and `portal
// keys rotate` moves them to a split set.
//
// A KeySet is immutable and safe for concurrent use.
type KeySet struct {
	Sparkle  *Key
	Minisign *Key
}

// hkdfInfoMinisign labels the derivation of the minisign key of a split set.
const hkdfInfoMinisign = "portal/signing/minisign-key/v1"

// SharedKeyMaxMessage is the largest message a minisign signature by the
// portal ever signs with the file key: the signature followed by the
// longest trusted comment (the digest is 64 bytes, shorter still). A shared
// KeySet does not Sparkle-sign files up to this size.
const SharedKeyMaxMessage = ed25519.SignatureSize + MaxTrustedCommentLen

// GenerateKeySet returns a new split KeySet.
func GenerateKeySet() (*KeySet, error) {
	k, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	return splitSet(k)
}

// splitSet returns the split KeySet whose Sparkle key is k; the minisign key
// takes k's key id.
func splitSet(k *Key) (*KeySet, error) {
	seed, err := hkdf.Key(sha256.New, k.priv.Seed(), nil, hkdfInfoMinisign, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("signing: derive minisign key: %w", err)
	}
	return &KeySet{Sparkle: k, Minisign: newKey(k.id, seed)}, nil
}

// SharedKeySet returns the KeySet of a product whose one key serves both
// schemes, the portal's first scheme.
func SharedKeySet(k *Key) *KeySet { return &KeySet{Sparkle: k, Minisign: k} }

// Separate reports whether Sparkle and minisign use different keys.
func (ks *KeySet) Separate() bool {
	return ks != nil && ks.Sparkle != ks.Minisign
}

// SparkleSigns reports whether the portal makes Sparkle signatures for a
// file of size bytes with this set: always with separate keys; with a shared
// key only for files larger than SharedKeyMaxMessage, which no minisign
// message of the portal's can be.
func (ks *KeySet) SparkleSigns(size int64) bool {
	return ks.Separate() || size > int64(SharedKeyMaxMessage)
}

// PublicKeys are the public halves of a KeySet in the forms update clients
// are configured with.
type PublicKeys struct {
	// Sparkle is SUPublicEDKey: base64 of the Ed25519 public key.
	Sparkle string `json:"sparkle"`
	// Minisign is the minisign public key line (minisign -P, Tauri's
	// pubkey after base64 of the .pub file, minio/selfupdate).
	Minisign      string `json:"minisign"`
	MinisignKeyID string `json:"minisign_key_id"`
	// MinisignPub is the content of the minisign .pub file.
	MinisignPub string `json:"minisign_pub"`
	// Separate is false for a shared key (one key for both schemes).
	Separate bool `json:"separate"`
	// RetiredAt is when a rotation replaced the set (previous sets only).
	RetiredAt *time.Time `json:"retired_at,omitempty"`
}

// Public returns the public keys of the set.
func (ks *KeySet) Public() PublicKeys {
	return PublicKeys{
		Sparkle:       ks.Sparkle.SparklePublicKey(),
		Minisign:      ks.Minisign.MinisignPublicKey(),
		MinisignKeyID: ks.Minisign.KeyIDHex(),
		MinisignPub:   ks.Minisign.MinisignPublicKeyFile(),
		Separate:      ks.Separate(),
	}
}

// TauriPubkey is the value of tauri.conf.json's plugins.updater.pubkey:
// base64 of the minisign .pub file.
func (p PublicKeys) TauriPubkey() string {
	return base64.StdEncoding.EncodeToString([]byte(p.MinisignPub))
}

// SealSet returns the stored form of ks: a shared set in the format of Seal
// (version 1, so stores written before split sets read the same), a split
// set as its Sparkle key's seed in version 2.
func (s *Sealer) SealSet(ks *KeySet) ([]byte, error) {
	if !ks.Separate() {
		return s.seal(sealVersion, ks.Sparkle)
	}
	want, err := splitSet(ks.Sparkle)
	if err != nil {
		return nil, err
	}
	if !sameKeyPair(want.Minisign, ks.Minisign) {
		return nil, fmt.Errorf("signing: seal: the minisign key is not the one derived from the Sparkle key")
	}
	return s.seal(splitVersion, ks.Sparkle)
}

func sameKeyPair(a, b *Key) bool {
	return a.usable() && b.usable() && a.id == b.id && string(a.priv) == string(b.priv)
}

// OpenSet returns the KeySet stored in b by SealSet (or Seal, a shared set).
// It fails like Open.
func (s *Sealer) OpenSet(b []byte) (*KeySet, error) {
	v, k, err := s.open(b, false)
	if err != nil {
		return nil, err
	}
	if v == sealVersion {
		return SharedKeySet(k), nil
	}
	return splitSet(k)
}
