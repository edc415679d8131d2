// Package secret makes and checks the portal's bearer secrets (license keys
// and API tokens): random values with a readable prefix, shown once and
// stored only as digests.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// randomBytes is the entropy of every secret: 160 bits.
const randomBytes = 20

var enc = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

// New returns a fresh secret "<prefix>_<32 base32 characters>".
func New(prefix string) string {
	b := make([]byte, randomBytes)
	if _, err := rand.Read(b); err != nil {
		panic("secret: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return prefix + "_" + enc.EncodeToString(b)
}

// Digest is what the store keeps of a secret: its SHA-256, hex. The secrets
// carry 160 random bits, so a plain hash is not open to guessing.
func Digest(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

// WellFormed reports whether s looks like a secret with the prefix, without
// touching the store; callers refuse malformed ones early.
//
// It runs before every key lookup, so it does not allocate: 160 bits are
// exactly 32 base32 characters, and any 32 characters of the alphabet
// decode.
func WellFormed(s, prefix string) bool {
	if len(s) != len(prefix)+1+enc.EncodedLen(randomBytes) || s[:len(prefix)] != prefix || s[len(prefix)] != '_' {
		return false
	}
	for i := len(prefix) + 1; i < len(s); i++ {
		if !inAlphabet[s[i]] {
			return false
		}
	}
	return true
}

const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"

var inAlphabet = func() (t [256]bool) {
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = true
	}
	return t
}()

// Hint is the part of a secret that may be shown and logged: the prefix and
// the first four random characters. Rate limits count failures per hint.
func Hint(s string) string {
	if i := strings.IndexByte(s, '_'); i >= 0 && len(s) >= i+5 {
		return s[:i+5]
	}
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// Equal compares two digests in constant time, after a length check.
func Equal(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
