package signing

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/portaldist/portal"
)

// OpenPGP algorithms a product's repository key can have. Ed25519 (as the
// "EdDSA legacy" v4 key that GnuPG 2.2 and later, apt's gpgv and rpm 4.14
// and later verify) is the default; RSA is for older clients (rpm before
// 4.14, RHEL/CentOS 7's gpg 2.0) that know no EdDSA.
const (
	OpenPGPEd25519 = "ed25519"
	OpenPGPRSA3072 = "rsa3072"
	OpenPGPRSA4096 = "rsa4096"
)

// ParseOpenPGPAlgorithm checks a configured algorithm name ("" is the
// default, ed25519).
func ParseOpenPGPAlgorithm(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", OpenPGPEd25519:
		return OpenPGPEd25519, nil
	case OpenPGPRSA3072:
		return OpenPGPRSA3072, nil
	case OpenPGPRSA4096:
		return OpenPGPRSA4096, nil
	}
	return "", portal.Errorf(portal.EInvalid, "unknown OpenPGP algorithm %q: use ed25519, rsa3072 or rsa4096", s)
}

// OpenPGPKey is a product's OpenPGP signing key: a v4 primary key with sign
// and certify flags and one user id, no subkeys. It signs package
// repository metadata (APT's InRelease and Release.gpg, YUM's
// repomd.xml.asc) with SHA-512. It is immutable and safe for concurrent use;
// formatting it prints only its fingerprint.
type OpenPGPKey struct {
	e         *openpgp.Entity
	algorithm string
}

// openpgpHash is the digest of every signature the portal makes. SHA-512
// is what current apt and rpm prefer; every client that verifies EdDSA or
// RSA-3072 keys knows it.
const openpgpHash = crypto.SHA512

func openpgpConfig(now time.Time) *packet.Config {
	return &packet.Config{DefaultHash: openpgpHash, Time: func() time.Time { return now }}
}

// signConfig is the configuration of a signature made at now: never before
// the key's creation (a clock set back, a test clock), which verifiers and
// go-crypto itself refuse.
func (k *OpenPGPKey) signConfig(now time.Time) *packet.Config {
	if created := k.e.PrimaryKey.CreationTime; now.Before(created) {
		now = created
	}
	return openpgpConfig(now)
}

// GenerateOpenPGPKey makes a new key of the algorithm (see
// ParseOpenPGPAlgorithm) whose user id is uid (e.g. "acme repository
// signing key"), created at now. RSA-4096 takes about a second.
func GenerateOpenPGPKey(algorithm, uid string, now time.Time) (*OpenPGPKey, error) {
	alg, err := ParseOpenPGPAlgorithm(algorithm)
	if err != nil {
		return nil, err
	}
	cfg := openpgpConfig(now.UTC().Truncate(time.Second))
	cfg.Rand = rand.Reader
	switch alg {
	case OpenPGPEd25519:
		cfg.Algorithm, cfg.Curve = packet.PubKeyAlgoEdDSA, packet.Curve25519
	case OpenPGPRSA3072:
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 3072
	case OpenPGPRSA4096:
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 4096
	}
	e, err := openpgp.NewEntity(uid, "", "", cfg)
	if err != nil {
		return nil, fmt.Errorf("signing: generate OpenPGP key: %w", err)
	}
	// A signing key needs no encryption subkey; without one, nobody can
	// mistake it for a key to encrypt to.
	e.Subkeys = nil
	return &OpenPGPKey{e: e, algorithm: alg}, nil
}

// Algorithm is the key's algorithm name (ed25519, rsa3072, rsa4096).
func (k *OpenPGPKey) Algorithm() string { return k.algorithm }

// Fingerprint is the v4 fingerprint in upper-case hex (40 digits), as gpg
// prints it.
func (k *OpenPGPKey) Fingerprint() string {
	return strings.ToUpper(fmt.Sprintf("%x", k.e.PrimaryKey.Fingerprint))
}

// KeyID is the long key id (the fingerprint's last 16 hex digits).
func (k *OpenPGPKey) KeyID() string { return k.e.PrimaryKey.KeyIdString() }

// PublicBinary is the transferable public key (key, user id, self
// signature) in binary form: what apt's signed-by takes as a .gpg file.
func (k *OpenPGPKey) PublicBinary() []byte {
	var b bytes.Buffer
	if err := k.e.Serialize(&b); err != nil {
		// Serialize writes already-made packets to a buffer.
		panic(fmt.Sprintf("signing: serialize OpenPGP public key: %v", err))
	}
	return b.Bytes()
}

// PublicArmored is PublicBinary in ASCII armor ("-----BEGIN PGP PUBLIC KEY
// BLOCK-----"), what rpm --import, dnf's gpgkey and apt's .asc keyrings take.
func (k *OpenPGPKey) PublicArmored() string {
	return armorBlock(openpgp.PublicKeyType, k.PublicBinary())
}

func armorBlock(kind string, b []byte) string {
	var out bytes.Buffer
	w, err := armor.EncodeWithChecksumOption(&out, kind, nil, true)
	if err == nil {
		_, err = w.Write(b)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		panic(fmt.Sprintf("signing: armor: %v", err)) // writes to a buffer only
	}
	out.WriteByte('\n')
	return out.String()
}

// ClearSign returns msg clear-signed ("-----BEGIN PGP SIGNED
// MESSAGE-----"), APT's InRelease. Trailing whitespace on msg's lines is
// not covered by the signature (OpenPGP's canonical text form), so callers
// should not produce any.
func (k *OpenPGPKey) ClearSign(msg []byte, now time.Time) ([]byte, error) {
	var out bytes.Buffer
	w, err := clearsign.Encode(&out, k.e.PrivateKey, k.signConfig(now))
	if err != nil {
		return nil, fmt.Errorf("signing: clear-sign: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return nil, fmt.Errorf("signing: clear-sign: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("signing: clear-sign: %w", err)
	}
	// go-crypto armors the signature without the CRC-24 line, as RFC 9580
	// allows; GnuPG 2.2 (Debian's gpgv, which apt runs) then misreads the
	// armor's end. The signature block is armored again with its checksum.
	b := out.Bytes()
	i := bytes.Index(b, []byte("\n-----BEGIN PGP SIGNATURE-----"))
	if i < 0 {
		return nil, fmt.Errorf("signing: clear-sign: no signature block in the output")
	}
	blk, err := armor.Decode(bytes.NewReader(b[i+1:]))
	if err != nil {
		return nil, fmt.Errorf("signing: clear-sign: %w", err)
	}
	sig, err := io.ReadAll(blk.Body)
	if err != nil {
		return nil, fmt.Errorf("signing: clear-sign: %w", err)
	}
	res := append(bytes.Clone(b[:i+1]), armorBlock(openpgp.SignatureType, sig)...)
	return res, nil
}

// DetachSign returns a binary detached signature of msg (a binary-document
// signature, as gpg --detach-sign makes).
func (k *OpenPGPKey) DetachSign(msg []byte, now time.Time) ([]byte, error) {
	var out bytes.Buffer
	if err := openpgp.DetachSign(&out, k.e, bytes.NewReader(msg), k.signConfig(now)); err != nil {
		return nil, fmt.Errorf("signing: detach-sign: %w", err)
	}
	return out.Bytes(), nil
}

// DetachSignArmored returns DetachSign's signature in ASCII armor ("-----BEGIN
// PGP SIGNATURE-----"): APT's Release.gpg, YUM's repomd.xml.asc.
func (k *OpenPGPKey) DetachSignArmored(msg []byte, now time.Time) ([]byte, error) {
	sig, err := k.DetachSign(msg, now)
	if err != nil {
		return nil, err
	}
	return []byte(armorBlock(openpgp.SignatureType, sig)), nil
}

// Format prints only the fingerprint, so a key in a log line or an error
// never discloses its private half.
func (k OpenPGPKey) Format(f fmt.State, verb rune) {
	fp := ""
	if k.e != nil {
		fp = k.Fingerprint()
	}
	fmt.Fprintf(f, "signing.OpenPGPKey(%s)", fp)
}

// OpenPGPPublic is the public side of an OpenPGP key as the portal
// publishes it.
type OpenPGPPublic struct {
	Algorithm   string `json:"algorithm"`
	Fingerprint string `json:"fingerprint"`
	KeyID       string `json:"key_id"`
	Armored     string `json:"armored"`
	Binary      []byte `json:"-"`
}

// Public returns the key's public forms.
func (k *OpenPGPKey) Public() OpenPGPPublic {
	return OpenPGPPublic{Algorithm: k.algorithm, Fingerprint: k.Fingerprint(), KeyID: k.KeyID(),
		Armored: k.PublicArmored(), Binary: k.PublicBinary()}
}

// VerifyOpenPGPDetached checks a detached signature (binary or armored) of
// msg by the public key given in binary or armored form. Tests and clients
// use it; the portal itself only signs.
func VerifyOpenPGPDetached(publicKey, msg, sig []byte) error {
	ring, err := readKeyRing(publicKey)
	if err != nil {
		return err
	}
	check := openpgp.CheckDetachedSignature
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN")) {
		check = openpgp.CheckArmoredDetachedSignature
	}
	if _, err := check(ring, bytes.NewReader(msg), bytes.NewReader(sig), nil); err != nil {
		return portal.Errorf(portal.ESignatureInvalid, "OpenPGP signature does not verify: %v", err)
	}
	return nil
}

// VerifyOpenPGPClearSigned checks a clear-signed message by the public key
// and returns the signed text.
func VerifyOpenPGPClearSigned(publicKey, signed []byte) ([]byte, error) {
	ring, err := readKeyRing(publicKey)
	if err != nil {
		return nil, err
	}
	b, _ := clearsign.Decode(signed)
	if b == nil {
		return nil, portal.Errorf(portal.EInvalid, "not a clear-signed message")
	}
	if _, err := b.VerifySignature(ring, nil); err != nil {
		return nil, portal.Errorf(portal.ESignatureInvalid, "OpenPGP signature does not verify: %v", err)
	}
	return b.Plaintext, nil
}

func readKeyRing(publicKey []byte) (openpgp.EntityList, error) {
	read := openpgp.ReadKeyRing
	if bytes.HasPrefix(bytes.TrimSpace(publicKey), []byte("-----BEGIN")) {
		read = openpgp.ReadArmoredKeyRing
	}
	ring, err := read(bytes.NewReader(publicKey))
	if err != nil {
		return nil, portal.Errorf(portal.EInvalid, "not an OpenPGP public key: %v", err)
	}
	return ring, nil
}

// Stored OpenPGP keys (the "openpgp" member of a product's key ring, see
// ring.go):
//
//	"PGK" | 1 | mode
//	mode 'P': algorithm name (1-byte length, then the name) | private key packets | check (8) = SHA-256(everything before)[:8]
//	mode 'G': master key id (4) | nonce (12) | AES-256-GCM(algorithm name length and name | private key packets)
//
// As for the Ed25519 keys, the GCM additional data is the header and master
// key id followed by the Sealer's associated data (the product and
// "\x00openpgp"), so a key cannot be moved to another product.
const (
	pgpMagic   = "PGK"
	pgpVersion = 1
	pgpHeader  = len(pgpMagic) + 2
)

func (s *Sealer) forOpenPGP() *Sealer { return s.For(s.ad + "\x00openpgp") }

// SealOpenPGP returns the stored form of k, bound to the Sealer's
// associated data (the product: pass the product's Sealer, as for SealSet).
func (s *Sealer) SealOpenPGP(k *OpenPGPKey) ([]byte, error) {
	return s.forOpenPGP().sealOpenPGP(k)
}

func (s *Sealer) sealOpenPGP(k *OpenPGPKey) ([]byte, error) {
	if k == nil || k.e == nil || k.e.PrivateKey == nil {
		return nil, portal.Errorf(portal.EInvalid, "signing: cannot seal an unusable OpenPGP key")
	}
	var body bytes.Buffer
	body.WriteByte(byte(len(k.algorithm)))
	body.WriteString(k.algorithm)
	if err := k.e.SerializePrivateWithoutSigning(&body, nil); err != nil {
		return nil, fmt.Errorf("signing: serialize OpenPGP key: %w", err)
	}
	return s.sealBlob(body.Bytes())
}

func (s *Sealer) sealBlob(data []byte) ([]byte, error) {
	return s.sealAfter(append([]byte(pgpMagic), pgpVersion, s.mode()), data)
}

func (s *Sealer) openBlob(b []byte, allowPlain bool) ([]byte, error) {
	if len(b) < pgpHeader || string(b[:len(pgpMagic)]) != pgpMagic || b[3] != pgpVersion {
		return nil, fmt.Errorf("%w: not a stored OpenPGP key", ErrMalformedKey)
	}
	switch b[4] {
	case modePlain:
		if len(b) < pgpHeader+checkLen {
			return nil, fmt.Errorf("%w: truncated OpenPGP key", ErrMalformedKey)
		}
		n := len(b) - checkLen
		sum := sha256.Sum256(b[:n])
		if subtle.ConstantTimeCompare(sum[:checkLen], b[n:]) != 1 {
			return nil, fmt.Errorf("%w: checksum mismatch", ErrMalformedKey)
		}
		if s.aead != nil && !allowPlain {
			return nil, ErrPlaintextKey
		}
		return b[pgpHeader:n], nil
	case modeGCM:
		if len(b) < pgpHeader+masterIDLen+nonceLen+16 {
			return nil, fmt.Errorf("%w: truncated OpenPGP key", ErrMalformedKey)
		}
		if s.aead == nil {
			return nil, ErrMasterKeyRequired
		}
		if subtle.ConstantTimeCompare(b[pgpHeader:pgpHeader+masterIDLen], s.masterID[:]) != 1 {
			return nil, ErrWrongMasterKey
		}
		nonce := b[pgpHeader+masterIDLen : pgpHeader+masterIDLen+nonceLen]
		ad := s.additionalData(b[:pgpHeader+masterIDLen])
		data, err := s.aead.Open(nil, nonce, b[pgpHeader+masterIDLen+nonceLen:], ad)
		if err != nil {
			return nil, ErrUnseal
		}
		return data, nil
	}
	return nil, fmt.Errorf("%w: unknown mode %q", ErrMalformedKey, b[4])
}

// OpenOpenPGP returns the key SealOpenPGP stored in b. It fails like Open.
func (s *Sealer) OpenOpenPGP(b []byte) (*OpenPGPKey, error) {
	return s.forOpenPGP().openOpenPGP(b, false)
}

func (s *Sealer) openOpenPGP(b []byte, allowPlain bool) (*OpenPGPKey, error) {
	data, err := s.openBlob(b, allowPlain)
	if err != nil {
		return nil, err
	}
	if len(data) < 1 || len(data) < 1+int(data[0]) {
		return nil, fmt.Errorf("%w: truncated OpenPGP key", ErrMalformedKey)
	}
	alg, err := ParseOpenPGPAlgorithm(string(data[1 : 1+data[0]]))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	e, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(data[1+data[0]:])))
	if err != nil || e.PrivateKey == nil || e.PrivateKey.Encrypted {
		return nil, fmt.Errorf("%w: unreadable OpenPGP key", ErrMalformedKey)
	}
	return &OpenPGPKey{e: e, algorithm: alg}, nil
}

func (s *Sealer) needsResealOpenPGP(b []byte) bool {
	return s.aead != nil && len(b) >= pgpHeader && string(b[:len(pgpMagic)]) == pgpMagic && b[4] == modePlain
}

func (s *Sealer) resealOpenPGP(b []byte) ([]byte, error) {
	k, err := s.forOpenPGP().openOpenPGP(b, true)
	if err != nil {
		return nil, err
	}
	return s.SealOpenPGP(k)
}

// ErrNoOpenPGPKey: the product's stored keys hold no OpenPGP key yet
// (products made before repository signing); the caller makes one
// (WithOpenPGP) on first need.
var ErrNoOpenPGPKey = errors.New("signing: the product has no OpenPGP key yet")

func (s *Sealer) forNextOpenPGP() *Sealer { return s.For(s.ad + "\x00openpgp\x00next") }

func (s *Sealer) sealNextOpenPGP(k *OpenPGPKey) ([]byte, error) {
	return s.forNextOpenPGP().sealOpenPGP(k)
}

// OpenPGPSigners returns the OpenPGP keys that sign a product's repository
// metadata: the current key, then the staged one while a rotation is
// staged (clients that trust either key then verify). It fails with
// ErrNoOpenPGPKey like OpenPGP.
func (s *Sealer) OpenPGPSigners(stored []byte) ([]*OpenPGPKey, error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, err
	}
	if r.OpenPGP == nil {
		return nil, ErrNoOpenPGPKey
	}
	cur, err := s.OpenOpenPGP(r.OpenPGP)
	if err != nil {
		return nil, err
	}
	out := []*OpenPGPKey{cur}
	if r.OpenPGPNext != nil {
		next, err := s.forNextOpenPGP().openOpenPGP(r.OpenPGPNext, false)
		if err != nil {
			return nil, fmt.Errorf("staged OpenPGP key: %w", err)
		}
		out = append(out, next)
	}
	return out, nil
}

// StageOpenPGP is the first step of an OpenPGP key rotation: it adds next
// as the staged key, which is published and signs beside the current one
// from then on, so customers can add it to their keyrings before it signs
// alone. While a key is staged it returns the stored keys unchanged
// (created false) and that key.
func (s *Sealer) StageOpenPGP(stored []byte, next *OpenPGPKey) (out []byte, staged *OpenPGPKey, created bool, err error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, nil, false, err
	}
	if r.OpenPGP == nil {
		return nil, nil, false, ErrNoOpenPGPKey
	}
	if r.OpenPGPNext != nil {
		k, err := s.forNextOpenPGP().openOpenPGP(r.OpenPGPNext, false)
		if err != nil {
			return nil, nil, false, fmt.Errorf("staged OpenPGP key: %w", err)
		}
		return stored, k, false, nil
	}
	if r.OpenPGPNext, err = s.sealNextOpenPGP(next); err != nil {
		return nil, nil, false, err
	}
	return r.bytes(), next, true, nil
}

// ActivateOpenPGP is the second step: the staged key becomes the current
// one and signs alone; the replaced key's fingerprint goes first in
// OpenPGPPrevious (at most MaxPreviousKeys). Without a staged key it fails
// with ErrNothingStaged.
func (s *Sealer) ActivateOpenPGP(stored []byte) ([]byte, *OpenPGPKey, error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, nil, err
	}
	if r.OpenPGPNext == nil || r.OpenPGP == nil {
		return nil, nil, ErrNothingStaged
	}
	cur, err := s.OpenOpenPGP(r.OpenPGP)
	if err != nil {
		return nil, nil, err
	}
	next, err := s.forNextOpenPGP().openOpenPGP(r.OpenPGPNext, false)
	if err != nil {
		return nil, nil, fmt.Errorf("staged OpenPGP key: %w", err)
	}
	if r.OpenPGP, err = s.SealOpenPGP(next); err != nil {
		return nil, nil, err
	}
	r.OpenPGPNext = nil
	r.OpenPGPPrevious = append([]string{cur.Fingerprint()}, r.OpenPGPPrevious...)
	if len(r.OpenPGPPrevious) > MaxPreviousKeys {
		r.OpenPGPPrevious = r.OpenPGPPrevious[:MaxPreviousKeys]
	}
	return r.bytes(), next, nil
}

// ClearSignAll clear-signs msg with every key (one signature each, in one
// signature block), as InRelease is signed during a rotation.
func ClearSignAll(keys []*OpenPGPKey, msg []byte, now time.Time) ([]byte, error) {
	if len(keys) == 1 {
		return keys[0].ClearSign(msg, now)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("signing: clear-sign: no key")
	}
	// One signature block holding each key's signature packet: the
	// cleartext and its canonical form are the same for every key.
	var head []byte
	var sigs []byte
	for i, k := range keys {
		b, err := k.ClearSign(msg, now)
		if err != nil {
			return nil, err
		}
		j := bytes.Index(b, []byte("\n-----BEGIN PGP SIGNATURE-----"))
		blk, err := armor.Decode(bytes.NewReader(b[j+1:]))
		if err != nil {
			return nil, fmt.Errorf("signing: clear-sign: %w", err)
		}
		sig, err := io.ReadAll(blk.Body)
		if err != nil {
			return nil, fmt.Errorf("signing: clear-sign: %w", err)
		}
		if i == 0 {
			head = b[:j+1]
		} else if !bytes.Equal(head, b[:j+1]) {
			// The Hash header names each key's digest; all keys use SHA-512.
			return nil, fmt.Errorf("signing: clear-sign: the keys' cleartext headers differ")
		}
		sigs = append(sigs, sig...)
	}
	return append(bytes.Clone(head), armorBlock(openpgp.SignatureType, sigs)...), nil
}

// DetachSignArmoredAll returns one armored block with a detached signature
// of msg by each key, as Release.gpg and repomd.xml.asc are signed during a
// rotation.
func DetachSignArmoredAll(keys []*OpenPGPKey, msg []byte, now time.Time) ([]byte, error) {
	var sigs []byte
	for _, k := range keys {
		sig, err := k.DetachSign(msg, now)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig...)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("signing: detach-sign: no key")
	}
	return []byte(armorBlock(openpgp.SignatureType, sigs)), nil
}

// PublicKeyring returns the public keys as one keyring, binary (apt's
// signed-by .gpg file) and armored.
func PublicKeyring(keys []*OpenPGPKey) (binary []byte, armored string) {
	for _, k := range keys {
		binary = append(binary, k.PublicBinary()...)
	}
	return binary, armorBlock(openpgp.PublicKeyType, binary)
}

// OpenPGP opens the OpenPGP key in a product's stored keys, or returns
// ErrNoOpenPGPKey.
func (s *Sealer) OpenPGP(stored []byte) (*OpenPGPKey, error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, err
	}
	if r.OpenPGP == nil {
		return nil, ErrNoOpenPGPKey
	}
	return s.OpenOpenPGP(r.OpenPGP)
}

// WithOpenPGP returns a product's stored keys with k as its OpenPGP key,
// replacing any. The Ed25519 sets and their rotation are unaffected.
func (s *Sealer) WithOpenPGP(stored []byte, k *OpenPGPKey) ([]byte, error) {
	r, err := parseRing(stored)
	if err != nil {
		return nil, err
	}
	if r.OpenPGP, err = s.SealOpenPGP(k); err != nil {
		return nil, err
	}
	return r.bytes(), nil
}
