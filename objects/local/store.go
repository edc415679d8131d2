// Package local is the zero-config object store: objects are files under one
// directory, and clients reach them through links the portal signs with its
// own HMAC keys and serves itself under /blobs/ (see Store.Handler).
//
// Layout under Root: each object at its key's path; .tmp/ holds uploads in
// progress (renamed into place only once complete and verified); .meta/
// mirrors the object tree with each object's SHA-256. Keys never start a
// segment with "." (objects.CheckKey), so neither is reachable by a key.
// Every file access goes through an os.Root, which refuses "..", absolute
// paths and symlinks that lead out of Root.
package local

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
)

// Options configure a local Store.
type Options struct {
	// Root is the objects directory, created (0750) if missing.
	Root string
	// BaseURL is the portal's public URL as clients reach it (e.g.
	// http://127.0.0.1:8080); links are BaseURL + "/blobs/" + key + "?...".
	// With a path prefix (https://host/portal), the server must strip it
	// before the handler, which expects paths starting with /blobs/.
	BaseURL string
	// Keys sign (the current key) and verify (all keys) links; see
	// LoadOrCreateKeyring.
	Keys Keyring
	// MaxTTL caps link lifetimes; 0 or anything above 7 days means 7 days.
	MaxTTL time.Duration
	// Logger receives internal errors of the /blobs/ handler (never a
	// signature); nil means slog.Default().
	Logger *slog.Logger
}

// Store is the local-disk ObjectStore. It is safe for concurrent use; Close
// releases the root directory handle.
type Store struct {
	root    *os.Root
	baseURL string
	keys    Keyring
	maxTTL  time.Duration
	log     *slog.Logger
}

var _ objects.ObjectStore = (*Store)(nil)

const (
	tmpDir  = ".tmp"
	metaDir = ".meta"
	// staleUpload is how old a leftover upload in .tmp (from a crash) must
	// be before Open removes it.
	staleUpload = 24 * time.Hour
)

// Open opens (creating if needed) the object directory.
func Open(opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, portal.Errorf(portal.EInvalid, "local store: root directory is required")
	}
	if opts.Keys.Len() == 0 {
		return nil, portal.Errorf(portal.EInvalid, "local store: a signing keyring is required")
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, portal.Errorf(portal.EInvalid, "local store: base URL %q must be http(s)://host[:port][/path]", opts.BaseURL)
	}
	maxTTL := opts.MaxTTL
	if maxTTL <= 0 || maxTTL > objects.MaxLinkTTL {
		maxTTL = objects.MaxLinkTTL
	}
	if err := os.MkdirAll(opts.Root, 0o750); err != nil {
		return nil, fmt.Errorf("local store: %w", err)
	}
	root, err := os.OpenRoot(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("local store: %w", err)
	}
	for _, d := range []string{tmpDir, metaDir} {
		if err := root.MkdirAll(d, 0o750); err != nil {
			root.Close()
			return nil, fmt.Errorf("local store: %w", err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{
		root:    root,
		baseURL: strings.TrimRight(opts.BaseURL, "/"),
		keys:    opts.Keys,
		maxTTL:  maxTTL,
		log:     log,
	}
	s.removeStaleUploads()
	return s, nil
}

// Close releases the directory handle; the Store must not be used after.
func (s *Store) Close() error { return s.root.Close() }

// MaxTTL is the configured cap (at most 7 days); the local keys do not expire.
func (s *Store) MaxTTL() time.Duration { return s.maxTTL }

func (s *Store) removeStaleUploads() {
	d, err := s.root.Open(tmpDir)
	if err != nil {
		return
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleUpload {
			_ = s.root.Remove(tmpDir + "/" + e.Name())
		}
	}
}

// Link parameters (query). The signature covers every one of them, so
// changing any, or the key in the path, or the method, breaks it.
const (
	qExpires  = "exp"    // unix seconds
	qKeyID    = "kid"    // keyring key ID
	qFilename = "fn"     // GET: Content-Disposition filename
	qSize     = "size"   // PUT: exact body size
	qSHA256   = "sha256" // PUT: lower-hex body SHA-256
	qSig      = "sig"    // unpadded base64url HMAC-SHA256
)

// sign computes the link signature. The fields are joined with newlines,
// which neither keys nor filenames nor the numeric fields can contain, so
// no two different links share a message.
func sign(k Key, method, exp, key, size, sum, filename string) []byte {
	var buf [512]byte
	msg := buf[:0]
	for i, f := range [...]string{"portal-blob-v1", method, k.ID, exp, key, size, sum, filename} {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, f...)
	}
	return k.macs().Sum(msg)
}

// escapeKey escapes each segment of key for a URL path.
func escapeKey(key string) string {
	var b strings.Builder
	b.Grow(len(key) + 16)
	for i, seg := range strings.Split(key, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(seg))
	}
	return b.String()
}

func (s *Store) expiry(ttl time.Duration) (int64, error) {
	ttl, err := objects.CapTTL(ttl, s.maxTTL)
	if err != nil {
		return 0, err
	}
	return time.Now().Add(ttl).Unix(), nil
}

// PresignGet mints a /blobs/ GET link (also valid for HEAD). Offline: the
// object need not exist yet.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (objects.SignedRequest, error) {
	if err := objects.CheckKey(key); err != nil {
		return objects.SignedRequest{}, err
	}
	name, err := objects.DownloadName(key, filename)
	if err != nil {
		return objects.SignedRequest{}, err
	}
	exp, err := s.expiry(ttl)
	if err != nil {
		return objects.SignedRequest{}, err
	}
	k := s.keys.Current()
	expStr := strconv.FormatInt(exp, 10)
	sig := sign(k, "GET", expStr, key, "", "", name)
	u := s.baseURL + "/blobs/" + escapeKey(key) +
		"?" + qExpires + "=" + expStr +
		"&" + qFilename + "=" + url.QueryEscape(name) +
		"&" + qKeyID + "=" + k.ID +
		"&" + qSig + "=" + base64.RawURLEncoding.EncodeToString(sig)
	return objects.SignedRequest{Method: "GET", URL: u, ExpiresAt: time.Unix(exp, 0).UTC()}, nil
}

// PresignPut mints a /blobs/ PUT link bound to size and sha256Hex. Headers
// carry Content-Length and x-amz-checksum-sha256, like the S3 backend's.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, sha256Hex string, ttl time.Duration) (objects.SignedRequest, error) {
	if err := objects.CheckKey(key); err != nil {
		return objects.SignedRequest{}, err
	}
	if size < 0 || size > objects.MaxObjectSize {
		return objects.SignedRequest{}, portal.Errorf(portal.EInvalid, "object size %d is outside 0..%d", size, int64(objects.MaxObjectSize))
	}
	sum, ok := parseSHA256(sha256Hex)
	if !ok {
		return objects.SignedRequest{}, portal.Errorf(portal.EInvalid, "SHA-256 must be 64 lower-case hex digits")
	}
	exp, err := s.expiry(ttl)
	if err != nil {
		return objects.SignedRequest{}, err
	}
	k := s.keys.Current()
	expStr := strconv.FormatInt(exp, 10)
	sizeStr := strconv.FormatInt(size, 10)
	sig := sign(k, "PUT", expStr, key, sizeStr, sha256Hex, "")
	u := s.baseURL + "/blobs/" + escapeKey(key) +
		"?" + qExpires + "=" + expStr +
		"&" + qKeyID + "=" + k.ID +
		"&" + qSHA256 + "=" + sha256Hex +
		"&" + qSize + "=" + sizeStr +
		"&" + qSig + "=" + base64.RawURLEncoding.EncodeToString(sig)
	return objects.SignedRequest{
		Method: "PUT",
		URL:    u,
		Headers: map[string]string{
			"Content-Length":        sizeStr,
			"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum),
		},
		ExpiresAt: time.Unix(exp, 0).UTC(),
	}, nil
}

func parseSHA256(h string) ([]byte, bool) {
	if len(h) != 64 {
		return nil, false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, false
		}
	}
	sum, err := hex.DecodeString(h)
	return sum, err == nil
}

// Stat reports the object's size, and its SHA-256 as verified at upload when
// the record still matches the file.
func (s *Store) Stat(ctx context.Context, key string) (objects.ObjectInfo, error) {
	if err := objects.CheckKey(key); err != nil {
		return objects.ObjectInfo{}, err
	}
	fi, err := s.root.Stat(key)
	if err != nil {
		return objects.ObjectInfo{}, s.fileErr("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return objects.ObjectInfo{}, notFound(key)
	}
	return objects.ObjectInfo{Size: fi.Size(), SHA256: s.readMeta(key, fi)}, nil
}

// Open opens the object for reading; the caller closes it.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	f, _, err := s.openObject(key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (s *Store) openObject(key string) (*os.File, fs.FileInfo, error) {
	if err := objects.CheckKey(key); err != nil {
		return nil, nil, err
	}
	f, err := s.root.Open(key)
	if err != nil {
		return nil, nil, s.fileErr("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("local store: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, notFound(key)
	}
	return f, fi, nil
}

// Delete removes the object and its hash record; a missing object is fine.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := objects.CheckKey(key); err != nil {
		return err
	}
	fi, err := s.root.Lstat(key)
	switch {
	case err != nil && !isMissing(err) && !isConfinement(err) && !errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("local store: delete %s: %w", key, err)
	case err == nil && fi.IsDir():
		return nil // a key prefix, not an object
	}
	// The record goes first, so no record outlives its object.
	if err := s.root.Remove(metaDir + "/" + key); err != nil && !isMissing(err) &&
		!errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("local store: delete %s: %w", key, err)
	}
	if fi == nil {
		return nil
	}
	if err := s.root.Remove(key); err != nil && !isMissing(err) {
		return fmt.Errorf("local store: delete %s: %w", key, err)
	}
	return nil
}

// Ping checks that the directory is still there and usable.
func (s *Store) Ping(ctx context.Context) error {
	fi, err := s.root.Stat(tmpDir)
	if err != nil {
		return fmt.Errorf("local store: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("local store: %s/%s is not a directory", s.root.Name(), tmpDir)
	}
	return nil
}

// Put stores body as key (objects.Putter): exactly size bytes hashing to
// sha256Hex, or nothing.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, sha256Hex string) error {
	if err := objects.CheckKey(key); err != nil {
		return err
	}
	if size < 0 || size > objects.MaxObjectSize {
		return portal.Errorf(portal.EInvalid, "size %d is out of range", size)
	}
	sum, ok := parseSHA256(sha256Hex)
	if !ok {
		return portal.Errorf(portal.EInvalid, "sha256 must be 64 lower-case hex digits")
	}
	return s.put(key, body, size, sum)
}

// put stores body as key, verifying it is exactly size bytes hashing to sum.
// Nothing is left under key (or in .tmp) unless the whole body checks out.
func (s *Store) put(key string, body io.Reader, size int64, sum []byte) (err error) {
	var rnd [12]byte
	rand.Read(rnd[:])
	tmpName := tmpDir + "/" + hex.EncodeToString(rnd[:])
	f, err := s.root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("local store: create upload file: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			_ = s.root.Remove(tmpName)
		}
	}()
	h := sha256.New()
	src := &readErr{r: io.LimitReader(body, size+1)}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		if src.err != nil {
			return &portal.Error{Code: portal.EInvalid, Message: "upload interrupted", Err: err}
		}
		return fmt.Errorf("local store: write upload: %w", err) // disk full, I/O error
	}
	if n != size {
		return portal.Errorf(portal.EInvalid, "body is %d bytes, the link is for %d", n, size)
	}
	if !hmac.Equal(h.Sum(nil), sum) {
		return portal.Errorf(portal.EInvalid, "body SHA-256 does not match the link")
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("local store: sync upload: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("local store: stat upload: %w", err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return fmt.Errorf("local store: close upload: %w", err)
	}
	f = nil

	dir := path.Dir(key)
	if dir != "." {
		if err := s.root.MkdirAll(dir, 0o750); err != nil {
			return s.placeErr(key, err)
		}
	}
	// The old record goes first: a crash after the rename leaves an object
	// without a record (Stat then reports no hash), never a wrong hash.
	// A record path that is a directory means key is a prefix of other
	// keys: placeErr reports that as the caller's conflict.
	if err := s.root.Remove(metaDir + "/" + key); err != nil && !isMissing(err) {
		return s.placeErr(key, err)
	}
	if err := s.root.Rename(tmpName, key); err != nil {
		return s.placeErr(key, err)
	}
	s.syncDir(dir)
	s.writeMeta(key, hex.EncodeToString(sum), fi)
	return nil
}

// readErr remembers a read error, telling a client's broken upload (its
// fault) from a failing disk (ours).
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// placeErr reports a failure to put a verified upload in place: a key whose
// path is blocked (a directory of that name, a symlink out of the root) is
// the caller's problem, anything else is internal.
func (s *Store) placeErr(key string, err error) error {
	if isConfinement(err) || isMissing(err) || errors.Is(err, syscall.EISDIR) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
		return &portal.Error{Code: portal.EConflict, Message: "object key cannot be stored", Err: err}
	}
	return fmt.Errorf("local store: place %s: %w", key, err)
}

func (s *Store) syncDir(dir string) {
	d, err := s.root.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}

// The hash record is "<sha256hex> <size> <mtime unix nanoseconds>\n" at
// .meta/<key>; it is trusted only while size and mtime match the object, so
// an object replaced behind the record's back reports no hash rather than a
// wrong one.
func (s *Store) writeMeta(key, sum string, fi fs.FileInfo) {
	name := metaDir + "/" + key
	if err := s.root.MkdirAll(path.Dir(name), 0o750); err != nil {
		s.log.Warn("local store: hash record", "key", key, "err", err)
		return
	}
	rec := fmt.Sprintf("%s %d %d\n", sum, fi.Size(), fi.ModTime().UnixNano())
	if err := s.root.WriteFile(name, []byte(rec), 0o640); err != nil {
		s.log.Warn("local store: hash record", "key", key, "err", err)
	}
}

func (s *Store) readMeta(key string, fi fs.FileInfo) string {
	b, err := s.root.ReadFile(metaDir + "/" + key)
	if err != nil || len(b) > 200 {
		return ""
	}
	var sum string
	var size, mtime int64
	if _, err := fmt.Sscanf(string(b), "%64s %d %d\n", &sum, &size, &mtime); err != nil {
		return ""
	}
	if _, ok := parseSHA256(sum); !ok || size != fi.Size() || mtime != fi.ModTime().UnixNano() {
		return ""
	}
	return sum
}

func notFound(key string) error {
	return portal.Errorf(portal.ENotFound, "object %s not found", key)
}

// fileErr maps a failed lookup to ENotFound: missing, a path through a
// non-directory, a symlink loop, or a path that os.Root refuses because it
// leads out of the root all mean "no such object here".
func (s *Store) fileErr(op, key string, err error) error {
	if isMissing(err) || isConfinement(err) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) {
		return &portal.Error{Code: portal.ENotFound, Message: "object " + key + " not found", Err: err}
	}
	return fmt.Errorf("local store: %s %s: %w", op, key, err)
}

func isMissing(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// isConfinement reports os.Root refusing a path that escapes the root. The
// os package does not export that error, so its text is matched, at any
// depth (os.Root nests it, e.g. mkdirat -> statat -> escape).
func isConfinement(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}
