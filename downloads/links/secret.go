package links

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

const maxSecretFile = 4 << 10

// LoadOrCreateSecret returns the link-signing secret kept in the file at
// path, creating it on first start: MinSecretLen random bytes, mode 0600, in
// a directory created 0700. A file that group or others may access, or that
// holds fewer than MinSecretLen bytes, is refused rather than used or
// replaced: replacing it would invalidate every outstanding link. Two
// processes starting at once end up with the same secret.
func LoadOrCreateSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("links: no secret file path")
	}
	for range 3 {
		b, err := readSecret(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
		b, err = createSecret(path)
		if err == nil || !errors.Is(err, fs.ErrExist) {
			return b, err
		}
		// Another process created it first: read theirs.
	}
	return nil, fmt.Errorf("links: secret file %s keeps appearing and disappearing", path)
}

func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("links: secret: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("links: secret: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("links: secret file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("links: secret file %s has mode %04o; it signs share links and must be 0600 (chmod 600 %s)",
			path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("links: read secret %s: %w", path, err)
	}
	if len(b) < MinSecretLen || len(b) > maxSecretFile {
		return nil, fmt.Errorf("links: secret file %s holds %d bytes; it must hold %d to %d", path, len(b), MinSecretLen, maxSecretFile)
	}
	return b, nil
}

// createSecret writes the file without ever exposing a partial one: a
// private temp file is hard-linked into place, which fails with
// fs.ErrExist when a concurrent creator won.
func createSecret(path string) ([]byte, error) {
	b := make([]byte, MinSecretLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("links: secret: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("links: secret: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".link-secret-*")
	if err != nil {
		return nil, fmt.Errorf("links: secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("links: write secret %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("links: create secret %s: %w", path, err)
	}
	return b, nil
}
