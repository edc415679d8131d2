package local

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/internal/hmacpool"
)

// Key is one HMAC secret of the keyring. ID travels in every link (query
// parameter kid) so the handler knows which secret to verify with.
type Key struct {
	ID     string
	Secret []byte

	mac *hmacpool.Pool // keyed states of Secret; set by NewKeyring
}

// macs returns the key's pool of keyed HMAC states (a new one for a Key
// not made by NewKeyring).
func (k Key) macs() *hmacpool.Pool {
	if k.mac != nil {
		return k.mac
	}
	return hmacpool.New(k.Secret)
}

// Keyring holds the link-signing keys: the last one signs, all of them verify.
// Rotating means adding a newer key at the end and, once every link signed by
// an older key has expired (at most the store's MaxTTL), removing the older
// one. A Keyring is immutable and safe to share.
type Keyring struct {
	keys []Key
}

// MinSecretLen is the shortest accepted secret, in bytes.
const MinSecretLen = 32

// DefaultKeyID is the ID given to a configured secret written without one.
const DefaultKeyID = "default"

// NewKeyring builds a keyring from keys, the last one signing. IDs must be
// unique, 1-32 characters of [A-Za-z0-9_-]; secrets at least MinSecretLen
// bytes.
func NewKeyring(keys ...Key) (Keyring, error) {
	if len(keys) == 0 {
		return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: no keys")
	}
	seen := make(map[string]bool, len(keys))
	out := make([]Key, len(keys))
	for i, k := range keys {
		if !validKeyID(k.ID) {
			return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: key ID %q must be 1-32 characters of A-Z a-z 0-9 _ -", k.ID)
		}
		if seen[k.ID] {
			return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: key ID %q appears twice", k.ID)
		}
		seen[k.ID] = true
		if len(k.Secret) < MinSecretLen {
			return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: secret of key %q is shorter than %d bytes", k.ID, MinSecretLen)
		}
		secret := append([]byte(nil), k.Secret...)
		out[i] = Key{ID: k.ID, Secret: secret, mac: hmacpool.New(secret)}
	}
	return Keyring{keys: out}, nil
}

// ParseKeyring reads the keyring text format, shared by the key file and the
// configured secret:
//
//	# comment lines and blank lines are ignored
//	k20250101:Zq3...43 characters of base64url...   (older key: verifies only)
//	k20250601:Hx9...                                (last key: signs new links)
//
// Entries are separated by newlines or commas; each is ID:SECRET, where the
// secret's bytes, as written, are the HMAC key (at least 32 of them; the
// portal generates 32 random bytes written as unpadded base64url, 43
// characters). An entry without ":" is a secret whose ID is "default", so a
// configured plain secret works as is. Secrets cannot hold commas, spaces or
// newlines.
//
// Errors never quote the text: in a plain secret that holds ':' the part
// before it is read as an ID, so an entry is named by its position, or as
// "default" when it has no ID of its own.
func ParseKeyring(text string) (Keyring, error) {
	var keys []Key
	seen := make(map[string]int)
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n := len(keys) + 1
			name := fmt.Sprintf("entry %d", n)
			id, secret, ok := strings.Cut(entry, ":")
			if !ok {
				id, secret = DefaultKeyID, entry
				name = fmt.Sprintf("key %q", DefaultKeyID)
			}
			switch {
			case !validKeyID(id):
				return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: the key ID of %s must be 1-32 characters of A-Z a-z 0-9 _ -", name)
			case strings.ContainsAny(secret, " \t\r"):
				return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: secret of %s holds whitespace", name)
			case len(secret) < MinSecretLen:
				return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: secret of %s is shorter than %d bytes", name, MinSecretLen)
			case seen[id] != 0:
				return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: entries %d and %d have the same key ID", seen[id], n)
			}
			seen[id] = n
			keys = append(keys, Key{ID: id, Secret: []byte(secret)})
		}
	}
	return NewKeyring(keys...)
}

// Format writes the keyring in the text format ParseKeyring reads.
func (k Keyring) Format() string {
	var b strings.Builder
	b.WriteString("# portal /blobs/ link-signing keys: ID:SECRET per line; the last key signs, all verify.\n")
	for _, key := range k.keys {
		b.WriteString(key.ID)
		b.WriteByte(':')
		b.Write(key.Secret)
		b.WriteByte('\n')
	}
	return b.String()
}

// Current is the key that signs new links.
func (k Keyring) Current() Key { return k.keys[len(k.keys)-1] }

// Lookup finds the key with the given ID.
func (k Keyring) Lookup(id string) (Key, bool) {
	for _, key := range k.keys {
		if key.ID == id {
			return key, true
		}
	}
	return Key{}, false
}

// Len is the number of keys.
func (k Keyring) Len() int { return len(k.keys) }

// String never shows secrets.
func (k Keyring) String() string {
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = key.ID
	}
	return "Keyring[" + strings.Join(ids, ",") + "]"
}

// GenerateKey makes a new key: 32 random bytes as unpadded base64url, and a
// random ID.
func GenerateKey() (Key, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Key{}, fmt.Errorf("keyring: random secret: %w", err)
	}
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return Key{}, fmt.Errorf("keyring: random key ID: %w", err)
	}
	return Key{
		ID:     "k" + base64.RawURLEncoding.EncodeToString(id),
		Secret: []byte(base64.RawURLEncoding.EncodeToString(raw)),
	}, nil
}

// LoadOrCreateKeyring returns the configured keyring when configured is not
// empty (ParseKeyring format; path is then not touched). Otherwise it reads
// the key file at path, creating it on first start with one generated key,
// mode 0600 in a directory created 0700. A key file that group or others can
// read or write is refused: it holds the secrets that make download links.
func LoadOrCreateKeyring(path string, configured string) (Keyring, error) {
	if strings.TrimSpace(configured) != "" {
		k, err := ParseKeyring(configured)
		if err != nil {
			return Keyring{}, fmt.Errorf("configured blob signing secret: %w", err)
		}
		return k, nil
	}
	if path == "" {
		return Keyring{}, portal.Errorf(portal.EInvalid, "keyring: no key file path and no configured secret")
	}
	for range 3 {
		k, err := readKeyFile(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return k, err
		}
		k, err = createKeyFile(path)
		if err == nil || !errors.Is(err, fs.ErrExist) {
			return k, err
		}
		// Another process created it first: read theirs.
	}
	return Keyring{}, fmt.Errorf("keyring: %s keeps appearing and disappearing", path)
}

func readKeyFile(path string) (Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return Keyring{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Keyring{}, fmt.Errorf("keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Keyring{}, fmt.Errorf("keyring: %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Keyring{}, fmt.Errorf("keyring: %s has mode %04o; it holds secrets and must be 0600 (chmod 600 %s)",
			path, fi.Mode().Perm(), path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err != nil {
		return Keyring{}, fmt.Errorf("keyring: read %s: %w", path, err)
	}
	if len(buf) > 64<<10 {
		return Keyring{}, fmt.Errorf("keyring: %s is larger than 64 KiB", path)
	}
	k, err := ParseKeyring(string(buf))
	if err != nil {
		return Keyring{}, fmt.Errorf("keyring: %s: %w", path, err)
	}
	return k, nil
}

// createKeyFile writes a fresh key file without ever exposing a partial one:
// the content goes to a private temp file that is then hard-linked into
// place (link fails if the name exists, so a concurrent creator wins
// cleanly with fs.ErrExist).
func createKeyFile(path string) (Keyring, error) {
	key, err := GenerateKey()
	if err != nil {
		return Keyring{}, err
	}
	k, err := NewKeyring(key)
	if err != nil {
		return Keyring{}, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Keyring{}, fmt.Errorf("keyring: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".keys-*")
	if err != nil {
		return Keyring{}, fmt.Errorf("keyring: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return Keyring{}, fmt.Errorf("keyring: %w", err)
	}
	if _, err := tmp.WriteString(k.Format()); err != nil {
		tmp.Close()
		return Keyring{}, fmt.Errorf("keyring: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return Keyring{}, fmt.Errorf("keyring: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return Keyring{}, fmt.Errorf("keyring: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Keyring{}, err
		}
		return Keyring{}, fmt.Errorf("keyring: create %s: %w", path, err)
	}
	return k, nil
}

func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
