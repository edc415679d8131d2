package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portaldist/portal"
	"golang.org/x/crypto/blake2b"
)

const (
	// minisignUntrustedComment is line 1 of every signature the portal makes.
	// It is not signed; verifiers only require the "untrusted comment: "
	// prefix.
	minisignUntrustedComment = "untrusted comment: signature from portal secret key"
	minisignTrustedPrefix    = "trusted comment: "

	// MaxTrustedCommentLen is the longest trusted comment, in bytes, that
	// minisign reads back: it reads the line "trusted comment: <comment>\n"
	// into an 8192-byte buffer including the terminating NUL; a longer line
	// is split and the signature file no longer parses.
	MaxTrustedCommentLen = 8192 - len(minisignTrustedPrefix) - 2
)

// MinisignSign returns a minisign signature file (.minisig) for the file whose
// BLAKE2b-512 digest is blake2b512, in minisign's prehashed "ED" form, the
// only one aead.dev/minisign's streaming verifier accepts:
//
//	untrusted comment: signature from portal secret key
//	base64("ED" || key id || Ed25519(BLAKE2b-512(file)))
//	trusted comment: <trustedComment>
//	base64(Ed25519(signature || trustedComment))
//
// each line ending in "\n". The last line (minisign's global signature)
// authenticates the trusted comment.
//
// trustedComment must be valid UTF-8 (Rust verifiers such as Tauri's decode
// it as a string) without NUL, CR or LF (minisign reads one line and cuts it
// at the first CR or LF, so such a comment would not verify), at most
// MaxTrustedCommentLen bytes; see TrustedComment for the usual content.
// A digest that is not 64 bytes, a bad comment or an unusable Key is an
// EInvalid error.
func (k *Key) MinisignSign(blake2b512 []byte, trustedComment string) ([]byte, error) {
	if !k.usable() {
		return nil, portal.Errorf(portal.EInvalid, "signing key is not usable")
	}
	if len(blake2b512) != blake2b.Size {
		return nil, portal.Errorf(portal.EInvalid, "BLAKE2b-512 digest must be %d bytes, got %d", blake2b.Size, len(blake2b512))
	}
	if err := checkTrustedComment(trustedComment); err != nil {
		return nil, err
	}

	sig := ed25519.Sign(k.priv, blake2b512)
	global := ed25519.Sign(k.priv, append(append(make([]byte, 0, len(sig)+len(trustedComment)), sig...), trustedComment...))

	line2 := make([]byte, 0, 2+8+ed25519.SignatureSize)
	line2 = append(line2, minisignAlgED...)
	line2 = append(line2, k.id[:]...)
	line2 = append(line2, sig...)

	var b bytes.Buffer
	b.Grow(len(minisignUntrustedComment) + len(minisignTrustedPrefix) + len(trustedComment) + 200)
	b.WriteString(minisignUntrustedComment)
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(line2))
	b.WriteByte('\n')
	b.WriteString(minisignTrustedPrefix)
	b.WriteString(trustedComment)
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(global))
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func checkTrustedComment(c string) error {
	switch {
	case len(c) > MaxTrustedCommentLen:
		return portal.Errorf(portal.EInvalid, "trusted comment is longer than %d bytes", MaxTrustedCommentLen)
	case strings.ContainsAny(c, "\x00\r\n"):
		return portal.Errorf(portal.EInvalid, "trusted comment must not contain NUL, CR or LF")
	case !utf8.ValidString(c):
		return portal.Errorf(portal.EInvalid, "trusted comment is not valid UTF-8")
	}
	return nil
}

// TrustedComment returns the trusted comment minisign itself writes for a
// prehashed signature, "timestamp:<unix seconds>\tfile:<filename>\thashed".
// Verifiers display it; minisign -V -Q prints it. It does not check
// filename; MinisignSign refuses one that makes the comment invalid.
func TrustedComment(t time.Time, filename string) string {
	return "timestamp:" + strconv.FormatInt(t.Unix(), 10) + "\tfile:" + filename + "\thashed"
}

// TauriSignature returns the value of a Tauri update manifest's signature
// field: standard base64 of the whole .minisig text.
func TauriSignature(minisig []byte) string {
	return base64.StdEncoding.EncodeToString(minisig)
}

// ParseMinisignPublicKey decodes a minisign public key, either the single
// base64 line (MinisignPublicKey) or a whole .pub file (MinisignPublicKeyFile),
// into its key id (as KeyID reports it) and Ed25519 public key. Malformed
// input is an EInvalid error.
func ParseMinisignPublicKey(s string) (keyID uint64, pub ed25519.PublicKey, err error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 2 && strings.HasPrefix(lines[0], "untrusted comment: ") {
		lines = lines[1:]
	}
	if len(lines) != 1 {
		return 0, nil, portal.Errorf(portal.EInvalid, "minisign public key must be one base64 line, optionally after an untrusted comment")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(lines[0]))
	if err != nil {
		return 0, nil, portal.Errorf(portal.EInvalid, "minisign public key is not valid base64")
	}
	if len(b) != 2+8+ed25519.PublicKeySize {
		return 0, nil, portal.Errorf(portal.EInvalid, "minisign public key must be %d bytes, got %d", 2+8+ed25519.PublicKeySize, len(b))
	}
	if string(b[:2]) != minisignAlgEd {
		return 0, nil, portal.Errorf(portal.EInvalid, "minisign public key has an unknown algorithm")
	}
	return binary.LittleEndian.Uint64(b[2:10]), ed25519.PublicKey(b[10:]), nil
}

// VerifyMinisign checks a .minisig text against the minisign public key
// publicKey (either form ParseMinisignPublicKey takes) and the file's
// BLAKE2b-512 digest, the way minisign -V does for a prehashed signature:
// the key ids must match, the file signature must verify, and so must the
// global signature over the trusted comment, which it returns.
//
// Only the prehashed "ED" form is accepted, the one MinisignSign writes and
// the portal's own clients check. A malformed key, signature or digest is an
// EInvalid error; a signature that does not verify is ESignatureInvalid.
func VerifyMinisign(publicKey string, blake2b512, minisig []byte) (trustedComment string, err error) {
	id, pub, err := ParseMinisignPublicKey(publicKey)
	if err != nil {
		return "", err
	}
	if len(blake2b512) != blake2b.Size {
		return "", portal.Errorf(portal.EInvalid, "BLAKE2b-512 digest must be %d bytes, got %d", blake2b.Size, len(blake2b512))
	}
	lines := strings.Split(string(minisig), "\n")
	// A final newline leaves one empty element; minisign ignores anything
	// after the fourth line, and so does this.
	if len(lines) < 4 {
		return "", portal.Errorf(portal.EInvalid, "minisign signature must have four lines")
	}
	for i := range lines[:4] {
		lines[i] = strings.TrimRight(lines[i], "\r")
	}
	if !strings.HasPrefix(lines[0], "untrusted comment: ") {
		return "", portal.Errorf(portal.EInvalid, "minisign signature must start with an untrusted comment")
	}
	comment, ok := strings.CutPrefix(lines[2], minisignTrustedPrefix)
	if !ok {
		return "", portal.Errorf(portal.EInvalid, "minisign signature's third line must be a trusted comment")
	}
	sigLine, err := base64.StdEncoding.Strict().DecodeString(lines[1])
	if err != nil || len(sigLine) != 2+8+ed25519.SignatureSize {
		return "", portal.Errorf(portal.EInvalid, "minisign signature line is malformed")
	}
	global, err := base64.StdEncoding.Strict().DecodeString(lines[3])
	if err != nil || len(global) != ed25519.SignatureSize {
		return "", portal.Errorf(portal.EInvalid, "minisign global signature is malformed")
	}
	if string(sigLine[:2]) != minisignAlgED {
		return "", portal.Errorf(portal.EInvalid, "minisign signature is not in the prehashed (ED) form")
	}
	if binary.LittleEndian.Uint64(sigLine[2:10]) != id {
		return "", portal.Errorf(portal.ESignatureInvalid, "minisign signature was made with another key")
	}
	sig := sigLine[10:]
	if !ed25519.Verify(pub, blake2b512, sig) {
		return "", portal.Errorf(portal.ESignatureInvalid, "minisign signature does not match the file")
	}
	if !ed25519.Verify(pub, append(append([]byte(nil), sig...), comment...), global) {
		return "", portal.Errorf(portal.ESignatureInvalid, "minisign trusted comment signature does not verify")
	}
	return comment, nil
}
