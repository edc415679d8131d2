package signing

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"

	"github.com/portaldist/portal"
)

// SparkleSign returns the value of an appcast's sparkle:edSignature for a
// file: standard base64 of the 64-byte Ed25519 signature over the raw file
// bytes. Pure Ed25519 needs the whole file (it is hashed twice while
// signing), so data is the complete file, typically Digests.Data. It returns
// "" for an unusable Key.
func (k *Key) SparkleSign(data []byte) string {
	if !k.usable() {
		return ""
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, data))
}

// VerifySparkle checks a Sparkle EdDSA signature (standard base64) over data
// with pub. A malformed public key or signature is an EInvalid error; a
// well-formed signature that does not verify is ESignatureInvalid.
func VerifySparkle(pub ed25519.PublicKey, data []byte, sigB64 string) error {
	if len(pub) != ed25519.PublicKeySize {
		return portal.Errorf(portal.EInvalid, "Ed25519 public key must be %d bytes, got %d", ed25519.PublicKeySize, len(pub))
	}
	sig, err := ParseSparkleSignature(sigB64)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, data, sig) {
		return portal.Errorf(portal.ESignatureInvalid, "Sparkle signature does not match the file")
	}
	return nil
}

// ParseSparkleSignature validates the form of a Sparkle EdDSA signature and
// returns its 64 bytes: standard base64 (surrounding whitespace ignored)
// decoding to exactly 64 bytes whose scalar half is canonical (below the
// group order), since a signature with a non-canonical scalar can never
// verify.
//
// This is all the portal can check about a signature a publisher supplies
// (for a file too large to keep in memory, or because the app's
// SUPublicEDKey is the publisher's own key): verifying it needs the signing
// key's public half, which the portal may not hold, and the whole file, since
// pure Ed25519 has no prehashed form. Such a signature is stored as given and
// its validity is the publisher's responsibility; Sparkle rejects a wrong one
// on the user's machine. When the public key is known and the file is in
// memory (Digests.Data), use VerifySparkle instead.
func ParseSparkleSignature(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	sig, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || strings.ContainsAny(s, "\r\n") {
		return nil, portal.Errorf(portal.EInvalid, "Sparkle signature is not valid base64")
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, portal.Errorf(portal.EInvalid, "Sparkle signature must be %d bytes, got %d", ed25519.SignatureSize, len(sig))
	}
	if !scalarIsCanonical(sig[32:]) {
		return nil, portal.Errorf(portal.EInvalid, "Sparkle signature is not a valid Ed25519 signature")
	}
	return sig, nil
}

// groupOrder is ℓ = 2^252 + 27742317777372353535851937790883648493, the order
// of the Ed25519 base point, little-endian.
var groupOrder = [32]byte{
	0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
	0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
}

// scalarIsCanonical reports whether the 32-byte little-endian s is below ℓ,
// the check RFC 8032 and crypto/ed25519 apply to a signature's S half.
func scalarIsCanonical(s []byte) bool {
	for i := 31; i >= 0; i-- {
		switch {
		case s[i] < groupOrder[i]:
			return true
		case s[i] > groupOrder[i]:
			return false
		}
	}
	return false // equal to ℓ
}
