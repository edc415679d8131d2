// Package signing holds the portal's product signing keys and the signatures
// update clients check: Sparkle's EdDSA signature (Ed25519 over the raw file)
// and minisign signatures (Ed25519 over the file's BLAKE2b-512 digest, the
// prehashed "ED" form), which Tauri, minio/selfupdate, aead.dev/minisign and
// the minisign tool verify. A product has one key per scheme (KeySet: the
// minisign key derived from the Sparkle key's seed), except products made
// before that separation, which keep their one shared key until a rotation.
// It also computes, in one pass, the digests the catalog and feeds publish,
// and Sparkle signatures of files of any size in two streaming passes
// (SparkleStream).
//
// The package knows nothing of HTTP or storage: callers store the bytes
// Sealer.Seal returns and publish the public forms of a Key.
//
// # Keys at rest
//
// A Sealer turns a Key into bytes to store. With a master key configured
// (32 bytes, ParseMasterKey), the private key is encrypted with AES-256-GCM
// under a key derived from the master key with HKDF-SHA256, with a random
// nonce, and bound to associated data the caller chooses (Sealer.For, the
// product slug): a sealed key moved to another product, opened with another
// master key or altered in any byte does not open. A dump of the store then
// holds no usable signing key.
//
// Without a master key — the zero-config default, so that `portal serve` works
// on a fresh machine — the private key is stored in plaintext, marked as such
// and checksummed against corruption. Its only protection is the store file's
// permissions (0600, owner only): anyone who can read the data directory or a
// backup of it can sign updates that every installed client will accept.
// Operators who distribute to real users should configure a master key and
// keep it outside the data directory (environment or a secret store).
//
// Enabling a master key later: with a master key configured Open refuses
// plaintext keys (ErrPlaintextKey), since every genuine key is then sealed
// and a plaintext one can only have been planted. Reseal (ResealStored for a
// product's stored keys) converts them: the portal does so at start, and
// `portal keys seal` offline. Even after re-sealing, old copies may survive
// in backups and in the database file's free pages; treat keys that were
// ever stored in plaintext as exposed if the store might have been read, and
// rotate them (Stage, then Activate; see ring.go).
// Disabling the master key again is not possible without re-sealing first:
// an encrypted key never opens without it (ErrMasterKeyRequired).
//
// # Errors
//
// Bad input (malformed base64, wrong lengths, a trusted comment minisign
// could not read back) is a *portal.Error with code EInvalid; a well-formed
// signature that does not verify has code ESignatureInvalid. Failures to open
// a stored key are the sentinel errors of Sealer.Open. Nothing here panics on
// bad input, and no error message quotes a secret.
package signing
