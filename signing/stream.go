package signing

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"io"

	"filippo.io/edwards25519"
	"github.com/portaldist/portal"
)

// SparkleStream makes a Sparkle signature (pure Ed25519, RFC 8032 section
// 5.1.6) over a message read twice, in memory that does not depend on the
// message's size. Pure Ed25519 hashes the whole message twice, and the
// second hash needs the first one's result:
//
//	pass 1: r = SHA-512(prefix || M) mod ℓ, then R = rB
//	pass 2: k = SHA-512(R || A || M) mod ℓ, then S = r + k·a mod ℓ
//
// where (a, prefix) come from SHA-512 of the key's seed and A = aB is the
// public key. The signature R || S is byte for byte the one
// crypto/ed25519.Sign returns for the same key and message.
//
// Use: write M to Pass1, call Pass2 and write the same M to the writer it
// returns, then call Sum.
//
// Both passes must see the same bytes, and Sum checks that they did: the
// nonce r depends on pass 1 only, and two signatures with the same r over
// different messages give away the private key (a = (S1-S2)/(k1-k2)). So
// pass 2 hashes SHA-512(prefix || M) again, and Sum returns ErrPassesDiffer
// instead of a signature when it differs from pass 1's. A stored object that
// changes between the passes therefore costs a retry, never the key.
//
// A SparkleStream is not safe for concurrent use.
type SparkleStream struct {
	a      *edwards25519.Scalar
	prefix []byte
	pub    []byte
	h      hash.Hash // SHA-512(prefix || M) in pass 1, SHA-512(R || A || M) in pass 2
	again  hash.Hash // SHA-512(prefix || M) in pass 2
	rHash  []byte
	r      *edwards25519.Scalar
	rBytes []byte
	state  int // 0: pass 1, 1: pass 2, 2: done
}

// ErrPassesDiffer is SparkleStream.Sum's answer when the two passes did not
// see the same bytes.
var ErrPassesDiffer = errors.New("signing: the message changed between the two passes of a Sparkle signature")

// SparkleStream starts a streaming Sparkle signature with the key. It returns
// an EInvalid error for an unusable Key.
func (k *Key) SparkleStream() (*SparkleStream, error) {
	if !k.usable() {
		return nil, portal.Errorf(portal.EInvalid, "signing key is not usable")
	}
	h := sha512.Sum512(k.priv.Seed())
	a, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		return nil, err // cannot happen: the input is 32 bytes
	}
	s := &SparkleStream{a: a, prefix: h[32:], pub: k.PublicKey(), h: sha512.New()}
	s.h.Write(s.prefix)
	return s, nil
}

// Pass1 returns the writer of the first pass over the message.
func (s *SparkleStream) Pass1() hash.Hash { return s.h }

// Pass2 ends the first pass and returns the writer of the second one, which
// must receive the same bytes. Its Write never fails.
func (s *SparkleStream) Pass2() io.Writer {
	if s.state == 0 {
		s.rHash = s.h.Sum(nil)
		r, err := edwards25519.NewScalar().SetUniformBytes(s.rHash)
		if err != nil {
			panic(err) // cannot happen: the input is 64 bytes
		}
		s.r = r
		s.again = sha512.New()
		s.again.Write(s.prefix)
		s.rBytes = new(edwards25519.Point).ScalarBaseMult(r).Bytes()
		s.h.Reset()
		s.h.Write(s.rBytes)
		s.h.Write(s.pub)
		s.state = 1
	}
	return pass2{s}
}

type pass2 struct{ s *SparkleStream }

func (p pass2) Write(b []byte) (int, error) {
	p.s.h.Write(b)
	p.s.again.Write(b)
	return len(b), nil
}

// Sum ends the second pass and returns the 64-byte signature, or
// ErrPassesDiffer. Calling it before Pass2 is a programming error and panics.
func (s *SparkleStream) Sum() ([]byte, error) {
	if s.state == 0 {
		panic("signing: SparkleStream.Sum before Pass2")
	}
	var d [sha512.Size]byte
	if subtle.ConstantTimeCompare(s.again.Sum(d[:0]), s.rHash) != 1 {
		return nil, ErrPassesDiffer
	}
	k, err := edwards25519.NewScalar().SetUniformBytes(s.h.Sum(d[:0]))
	if err != nil {
		panic(err) // cannot happen: the input is 64 bytes
	}
	sc := edwards25519.NewScalar().MultiplyAdd(k, s.a, s.r)
	s.state = 2
	sig := make([]byte, 0, 64)
	sig = append(sig, s.rBytes...)
	return append(sig, sc.Bytes()...), nil
}

// SumBase64 is Sum in the form of an appcast's sparkle:edSignature.
func (s *SparkleStream) SumBase64() (string, error) {
	sig, err := s.Sum()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}
