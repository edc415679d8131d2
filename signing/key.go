package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// minisign's two-byte algorithm tags. Public keys always carry "Ed";
// signatures carry "ED" when the signed message is the BLAKE2b-512 digest of
// the file (prehashed), "Ed" when it is the file itself (legacy).
const (
	minisignAlgEd = "Ed"
	minisignAlgED = "ED"
)

// Key is one Ed25519 key pair, plus the 8-byte key id minisign puts in public
// keys and signatures so a verifier can tell which key a signature claims. A
// product's keys are a KeySet: one Key for Sparkle (EdDSA over the raw
// file), one for minisign (Ed25519 over the BLAKE2b-512 digest of the file),
// the same Key for both only on products made before the separation.
//
// A Key is obtained from GenerateKey or Sealer.Open; the zero Key is not
// usable (its methods return empty values or errors, they do not panic).
// A Key is immutable and safe for concurrent use.
//
// Key formats itself as its key id only, so logging a Key (with any verb)
// never prints the private key.
type Key struct {
	// id is the key id in minisign's wire order (the 8 bytes that follow the
	// algorithm tag), which is little-endian for the number minisign prints.
	id   [8]byte
	priv ed25519.PrivateKey
}

// GenerateKey returns a new Ed25519 key pair with a random minisign key id,
// both from crypto/rand.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing: generate key: %w", err)
	}
	k := &Key{priv: priv}
	if _, err := rand.Read(k.id[:]); err != nil {
		return nil, fmt.Errorf("signing: generate key id: %w", err)
	}
	return k, nil
}

// newKey builds a Key from a key id in wire order and a 32-byte Ed25519 seed.
func newKey(id [8]byte, seed []byte) *Key {
	return &Key{id: id, priv: ed25519.NewKeyFromSeed(seed)}
}

func (k *Key) usable() bool {
	return k != nil && len(k.priv) == ed25519.PrivateKeySize
}

// PublicKey returns a copy of the Ed25519 public key (32 bytes), or nil for
// an unusable Key.
func (k *Key) PublicKey() ed25519.PublicKey {
	if !k.usable() {
		return nil
	}
	return k.priv.Public().(ed25519.PublicKey)
}

// KeyID returns the minisign key id as the number minisign and
// aead.dev/minisign's PublicKey.ID report; on the wire it is stored
// little-endian.
func (k *Key) KeyID() uint64 {
	if k == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(k.id[:])
}

// KeyIDHex returns the key id as minisign prints it: upper-case hex without
// leading zeros (printf "%"PRIX64), e.g. in "minisign public key 5E847DDD89FD2D30".
func (k *Key) KeyIDHex() string {
	return strings.ToUpper(strconv.FormatUint(k.KeyID(), 16))
}

// SparklePublicKey returns the value for Sparkle's SUPublicEDKey: standard
// base64 of the 32-byte Ed25519 public key. It is "" for an unusable Key.
func (k *Key) SparklePublicKey() string {
	pub := k.PublicKey()
	if pub == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(pub)
}

// MinisignPublicKey returns the single base64 line that `minisign -P` takes
// and that Tauri's and minio/selfupdate's verifiers are configured with:
// base64("Ed" || key id || public key). It is "" for an unusable Key.
func (k *Key) MinisignPublicKey() string {
	pub := k.PublicKey()
	if pub == nil {
		return ""
	}
	b := make([]byte, 0, 2+8+ed25519.PublicKeySize)
	b = append(b, minisignAlgEd...)
	b = append(b, k.id[:]...)
	b = append(b, pub...)
	return base64.StdEncoding.EncodeToString(b)
}

// MinisignPublicKeyFile returns the content of a minisign .pub file, exactly
// as `minisign -G` writes it:
//
//	untrusted comment: minisign public key <KEYID>
//	<MinisignPublicKey()>
//
// with a trailing newline. It is "" for an unusable Key.
func (k *Key) MinisignPublicKeyFile() string {
	line := k.MinisignPublicKey()
	if line == "" {
		return ""
	}
	return "untrusted comment: minisign public key " + k.KeyIDHex() + "\n" + line + "\n"
}

// Format prints only the key id, whatever the verb, so a Key that ends up in a
// log line or an error message never discloses the private key. It has a
// value receiver so that a copied Key value is covered too.
func (k Key) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "signing.Key(%s)", k.KeyIDHex())
}
