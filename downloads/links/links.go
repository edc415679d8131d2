// Package links keeps revocable share links: a customer shares one artifact
// of one release through a token that works until it expires or is revoked,
// without handing out the license key.
//
// A link answers only "is this token a live link, and to what". The caller
// (the HTTP layer) must then check the link's license itself, now, and mint
// a fresh short-lived storage URL: this package knows nothing of license
// status, so a suspended or revoked license stops its links only through
// that check.
//
// # Tokens
//
// A token is "<id>.<expiry>.<tag>": the link ID (16 hex digits), the expiry
// in Unix seconds, and 32 bytes in unpadded base64url made of two truncated
// HMAC-SHA256 values under the service's secret:
//
//   - the first 16 bytes sign the ID and the expiry, so a forged or altered
//     token is refused before the store is read;
//   - the last 16 bytes sign the ID, the expiry, the license, the product, the
//     version and the file name, and are checked against the stored record,
//     so a token never grants more than what was signed even if the record
//     changed.
//
// Verify checks, in order: the form (signature_invalid), the first tag
// (signature_invalid), the expiry (link_expired), the record (missing or
// revoked: link_revoked), and the second tag against the record
// (signature_invalid). Tags are compared in constant time after a length
// check. Changing the secret invalidates every outstanding link, except
// those signed with a previous secret given to AcceptAlso.
//
// The secret is shared by every process on the store (SharedSecret keeps it
// there, sealed like the products' signing keys), so a link minted by one
// replica verifies on every other, and a backup of the store keeps links
// working after a restore.
//
// # Key layout
//
//	lnk/<id>                   the link (JSON)
//	lnk/by/<license>/<id>      index for List (empty value)
//	lnk/secret                 the shared secret, sealed (SharedSecret)
//
// Records are kept after they expire or are revoked, for the customer's
// list; Purge removes those expired before a given time.
//
// # Records in memory
//
// Opening a link (Verify) is a hot path, and on a shared store (etcd) a
// store read per open would be a network round trip to the cluster. So a
// Service keeps the link records it has read in memory, and Verify serves
// a record from there when it holds one. How the copies stay right:
//
//   - Only records read from the store are kept. A record the store does
//     not hold is never remembered as missing: a miss always reads the
//     store, so a link created a moment ago on another replica (whose
//     token can reach this one before any watch event) opens at once.
//   - A store watch of "lnk/", started by New, drops the copy of every link
//     written or deleted anywhere (a revocation, a deletion by Create or
//     Purge), as soon as the change is delivered: just after the commit on
//     bbolt, the watch's latency (milliseconds) on etcd. A store.EventReset
//     (a compacted etcd revision, a watcher that fell behind) drops them
//     all. The next open reads the record again.
//   - Revoke, Create and Purge drop the copies of the links they changed
//     after their commit, before they return: the replica that revoked
//     refuses the link at once, whatever the watch does.
//   - CacheTTL bounds, whatever the watch does (refused, reconnecting,
//     lagging), how long a copy is served: a revocation made on another
//     replica is refused here within CacheTTL of its commit at worst. Under
//     load, each hot link costs each replica one store read per CacheTTL,
//     however many times it is opened.
//
// The memory is bounded: at most CacheSize records, each about 350 bytes
// with its map entry (measured with typical field lengths), so under
// 20 MiB when full; then the cache starts over empty and refills from the
// store as links are opened. A copy is only dropped or replaced, never
// modified.
package links

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/internal/hmacpool"
	"github.com/portaldist/portal/internal/memo"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
)

// MaxTTL is the longest a link may live, whatever the configuration says.
const MaxTTL = 7 * 24 * time.Hour

// MinSecretLen is the shortest accepted HMAC secret, in bytes.
const MinSecretLen = 32

const (
	idLen       = 16 // hex digits
	halfTagLen  = 16 // bytes of each truncated HMAC
	tagLen      = 2 * halfTagLen
	tagB64Len   = 43 // unpadded base64url of tagLen bytes
	maxTokenLen = idLen + 1 + 19 + 1 + tagB64Len
	maxLicense  = 64
	maxCreator  = 200

	recordPrefix = "lnk/"
	indexPrefix  = "lnk/by/"
)

var tagEncoding = base64.RawURLEncoding.Strict()

// Link is one share link.
type Link struct {
	ID        string     `json:"id"`
	License   string     `json:"license"`
	Product   string     `json:"product"`
	Version   string     `json:"version"`
	Filename  string     `json:"filename"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// CreatedBy says who made the link (for example a license key hint or
	// an admin token name); free text, shown to admins.
	CreatedBy string `json:"created_by,omitempty"`
}

// Audit actions of link writes, each recorded (package audit) in the
// transaction of the change with the actor of the context; a context
// without an actor is refused and nothing is written. The token is never
// recorded (it is not stored either).
const (
	ActionCreate = "link.create"
	ActionRevoke = "link.revoke"
	// ActionDelete records a dead link that Create deleted to make room.
	ActionDelete = "link.delete"
)

func target(id string) string { return "link/" + id }

// DefaultPerLicense is how many links a license may keep stored unless
// SetPerLicense says otherwise.
const DefaultPerLicense = 100

// CacheTTL bounds how long Verify serves a link record from memory without
// reading the store (see the package doc): the most a revocation made on
// another replica can go unseen here when the store's watch does not
// deliver it.
const CacheTTL = time.Second

// CacheSize is the most link records a Service keeps in memory.
const CacheSize = 50_000

// Service creates, verifies and revokes links. It is safe for concurrent use.
type Service struct {
	db         store.DB
	secret     []byte
	mac        *hmacpool.Pool // keyed with secret
	old        []byte         // a previous secret Verify still accepts (AcceptAlso)
	oldMAC     *hmacpool.Pool // keyed with old
	now        func() time.Time
	perLicense atomic.Int64
	// records holds link records read from the store, by ID (see the
	// package doc for how they follow the store).
	records *memo.Cache[string, Link]
}

// SetPerLicense sets how many links one license may keep stored (n >= 1;
// see Create). Safe to call at any time.
func (s *Service) SetPerLicense(n int) {
	if n >= 1 {
		s.perLicense.Store(int64(n))
	}
}

// New returns the link service. secret is the HMAC key (at least
// MinSecretLen bytes; see LoadOrCreateSecret); it is copied. now defaults to
// time.Now. New starts a watch of db for the records kept in memory, with a
// goroutine that runs until db is closed; if db refuses the watch, the
// copies are bounded by CacheTTL alone.
func New(db store.DB, secret []byte, now func() time.Time) (*Service, error) {
	if len(secret) < MinSecretLen {
		return nil, portal.Errorf(portal.EInvalid, "links: the secret must be at least %d bytes, not %d", MinSecretLen, len(secret))
	}
	if now == nil {
		now = time.Now
	}
	s := &Service{db: db, secret: slices.Clone(secret), mac: hmacpool.New(secret), now: now,
		records: memo.New[string, Link](CacheTTL, CacheSize)}
	s.perLicense.Store(DefaultPerLicense)
	if events, err := db.Watch(context.Background(), []byte(recordPrefix)); err == nil {
		go s.records.Follow(events, recordID)
	}
	return s, nil
}

// recordID names the link whose record key is k; index keys and the
// shared secret are not records.
func recordID(k []byte) (string, bool) {
	id, ok := strings.CutPrefix(string(k), recordPrefix)
	return id, ok && validID(id)
}

// forget drops the in-memory copies of links after a commit that changed
// them.
func (s *Service) forget(ids ...string) {
	for _, id := range ids {
		s.records.Delete(id)
	}
}

// Create stores a new link to l's license and artifact, living ttl, and
// returns it with its token. The token is not stored: it can be rebuilt
// only by the holder of the secret, so show it to the customer now. l's ID,
// times and revocation are set here; the caller must already have checked
// that the license may have the artifact.
//
// maxTTL is the configured ceiling, itself capped at MaxTTL (<= 0 means
// MaxTTL). A ttl <= 0 or above the ceiling is refused with EInvalid naming
// the ceiling, rather than silently shortened: the customer asked for a
// lifetime and should know it was not granted.
//
// A license keeps at most SetPerLicense links stored (DefaultPerLicense).
// When it is at that number, Create deletes its dead links (expired or
// revoked), those that expired first first, to make room, in the same
// transaction; when every one is live, Create refuses with EConflict. So
// the rows a license can make the store hold are bounded, whatever the
// purge's grace period.
func (s *Service) Create(ctx context.Context, l Link, ttl, maxTTL time.Duration) (Link, string, error) {
	if maxTTL <= 0 || maxTTL > MaxTTL {
		maxTTL = MaxTTL
	}
	if ttl <= 0 {
		return Link{}, "", portal.Errorf(portal.EInvalid, "ttl must be positive, at most %s", maxTTL)
	}
	if ttl > maxTTL {
		return Link{}, "", portal.Errorf(portal.EInvalid, "ttl %s is above the maximum of %s", ttl, maxTTL)
	}
	if err := validate(l); err != nil {
		return Link{}, "", err
	}
	now := s.now().UTC().Truncate(time.Second)
	l.CreatedAt = now
	l.ExpiresAt = now.Add(ttl).Truncate(time.Second)
	l.RevokedAt = nil

	max := int(s.perLicense.Load())
	var deleted []string
	err := s.db.Update(ctx, func(tx store.Tx) error {
		var err error
		if deleted, err = makeRoom(ctx, tx, l.License, max, now); err != nil {
			return err
		}
		for range 3 {
			l.ID = newID()
			_, err := tx.Get(recordKey(l.ID))
			if errors.Is(err, store.ErrNotFound) {
				v, err := json.Marshal(l)
				if err != nil {
					return err
				}
				if err := tx.Put(recordKey(l.ID), v); err != nil {
					return err
				}
				if err := tx.Put(indexKey(l.License, l.ID), nil); err != nil {
					return err
				}
				return audit.Write(ctx, tx, ActionCreate, target(l.ID), nil, l)
			}
			if err != nil {
				return err
			}
		}
		return errors.New("three random link IDs in a row are taken")
	})
	s.forget(deleted...)
	if portal.IsCode(err, portal.EConflict) {
		return Link{}, "", err
	}
	if err != nil {
		return Link{}, "", fmt.Errorf("links: create: %w", err)
	}
	return l, s.token(l), nil
}

// makeRoom deletes dead links of license until it holds fewer than max
// links, or refuses with EConflict when its live links alone reach max. It
// returns the IDs of the links it deleted.
// Each deletion is audited (link.delete). It deletes at most
// (store.MaxTxnOps-4)/3 links (two keys and a record each), leaving room in
// the transaction for the new link, its record and the audit sequence
// (after a lowered limit, a license over it shrinks by that many per
// Create).
func makeRoom(ctx context.Context, tx store.Tx, license string, max int, now time.Time) ([]string, error) {
	prefix := indexKey(license, "")
	var ids []string
	err := tx.Scan(prefix, store.ScanOptions{}, func(k, _ []byte) (bool, error) {
		ids = append(ids, string(k[len(prefix):]))
		return true, nil
	})
	if err != nil || len(ids) < max {
		return nil, err
	}
	live := 0
	var dead []Link
	for _, id := range ids {
		v, err := tx.Get(recordKey(id))
		if errors.Is(err, store.ErrNotFound) {
			dead = append(dead, Link{ID: id, License: license}) // a stale index entry
			continue
		}
		if err != nil {
			return nil, err
		}
		var l Link
		if err := json.Unmarshal(v, &l); err != nil {
			return nil, fmt.Errorf("link %s: %w", id, err)
		}
		if l.RevokedAt != nil || !now.Before(l.ExpiresAt) {
			dead = append(dead, l)
		} else {
			live++
		}
	}
	if live >= max {
		return nil, portal.Errorf(portal.EConflict, "this license already has %d live share links, the most it may hold: revoke one (DELETE /v1/links/{id}) or wait until one expires", live)
	}
	slices.SortFunc(dead, func(a, b Link) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	n := min(len(ids)-max+1, len(dead), (store.MaxTxnOps-4)/3)
	deleted := make([]string, 0, n)
	for _, l := range dead[:n] {
		if err := tx.Delete(recordKey(l.ID)); err != nil {
			return nil, err
		}
		if err := tx.Delete(indexKey(license, l.ID)); err != nil {
			return nil, err
		}
		if err := audit.Write(ctx, tx, ActionDelete, target(l.ID), l, nil); err != nil {
			return nil, err
		}
		deleted = append(deleted, l.ID)
	}
	return deleted, nil
}

func validate(l Link) error {
	if !validLicense(l.License) {
		return portal.Errorf(portal.EInvalid, "a link needs a license ID of 1 to %d letters, digits, '-' or '_'", maxLicense)
	}
	if err := releases.ValidateSlug(l.Product); err != nil {
		return err
	}
	if l.Version == "" {
		return portal.Errorf(portal.EInvalid, "a link needs a version")
	}
	if err := releases.ValidateText("version", l.Version, releases.MaxVersionLen, false); err != nil {
		return err
	}
	if err := releases.ValidateFilename(l.Filename); err != nil {
		return err
	}
	return releases.ValidateText("created_by", l.CreatedBy, maxCreator, false)
}

func validLicense(id string) bool {
	if id == "" || len(id) > maxLicense {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func newID() string {
	b := make([]byte, idLen/2)
	rand.Read(b) // crypto/rand does not fail on supported systems
	return hex.EncodeToString(b)
}

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func recordKey(id string) []byte { return []byte(recordPrefix + id) }

func indexKey(license, id string) []byte { return []byte(indexPrefix + license + "/" + id) }

// token builds l's token.
func (s *Service) token(l Link) string {
	exp := l.ExpiresAt.Unix()
	tag := append(tagA(s.mac, l.ID, exp), tagB(s.mac, l, exp)...)
	return l.ID + "." + strconv.FormatInt(exp, 10) + "." + tagEncoding.EncodeToString(tag)
}

// tagA signs what the token itself carries.
func tagA(mac *hmacpool.Pool, id string, exp int64) []byte {
	var buf [128]byte
	msg := append(buf[:0], "portal share link v1: token\x00"...)
	msg = appendField(msg, id)
	msg = appendField(msg, strconv.FormatInt(exp, 10))
	return mac.Sum(msg)[:halfTagLen]
}

// tagB signs everything the link grants.
func tagB(mac *hmacpool.Pool, l Link, exp int64) []byte {
	var buf [512]byte
	msg := append(buf[:0], "portal share link v1: grant\x00"...)
	for _, f := range [...]string{l.ID, strconv.FormatInt(exp, 10), l.License, l.Product, l.Version, l.Filename} {
		msg = appendField(msg, f)
	}
	return mac.Sum(msg)[:halfTagLen]
}

// appendField appends f length-prefixed, so no two field lists sign alike.
func appendField(msg []byte, f string) []byte {
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(f)))
	return append(msg, f...)
}

// Verify returns the live link a token names. Errors are *portal.Error
// with code signature_invalid (malformed, forged or altered), link_expired
// or link_revoked (revoked or deleted), or an internal error when the store
// fails. The returned link has not been checked against its license.
func (s *Service) Verify(ctx context.Context, token string) (Link, error) {
	id, exp, tag, ok := parse(token)
	if !ok {
		return Link{}, portal.Errorf(portal.ESignatureInvalid, "malformed share link")
	}
	mac := s.mac
	if !hmac.Equal(tag[:halfTagLen], tagA(mac, id, exp)) {
		if s.oldMAC == nil || !hmac.Equal(tag[:halfTagLen], tagA(s.oldMAC, id, exp)) {
			return Link{}, portal.Errorf(portal.ESignatureInvalid, "invalid share link signature")
		}
		mac = s.oldMAC
	}
	expiry := time.Unix(exp, 0).UTC()
	if !s.now().Before(expiry) {
		return Link{}, portal.Errorf(portal.ELinkExpired, "this share link expired at %s", expiry.Format(time.RFC3339))
	}
	l, found, err := s.record(ctx, id)
	if err != nil {
		return Link{}, fmt.Errorf("links: load %s: %w", id, err)
	}
	if !found || l.RevokedAt != nil {
		return Link{}, portal.Errorf(portal.ELinkRevoked, "this share link was revoked")
	}
	if l.ID != id || !hmac.Equal(tag[halfTagLen:], tagB(mac, l, l.ExpiresAt.Unix())) {
		return Link{}, portal.Errorf(portal.ESignatureInvalid, "this share link does not match what was shared")
	}
	return l, nil
}

// record returns link id's record: the copy in memory, else the store's
// (kept in memory unless a change to the links was seen while it was read,
// as that copy may predate it). A missing record is not remembered: the
// next call reads the store again.
func (s *Service) record(ctx context.Context, id string) (Link, bool, error) {
	if l, ok := s.records.Get(id); ok {
		return l, true, nil
	}
	gen := s.records.Gen()
	var l Link
	found := true
	err := s.db.View(ctx, func(tx store.Tx) error {
		v, err := tx.Get(recordKey(id))
		if errors.Is(err, store.ErrNotFound) {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(v, &l)
	})
	if err != nil || !found {
		return Link{}, false, err
	}
	s.records.PutIf(id, l, gen)
	return l, true, nil
}

// parse splits a token without trusting any of it: bounded length, exact
// shape, canonical numbers and base64.
func parse(token string) (id string, exp int64, tag []byte, ok bool) {
	if len(token) > maxTokenLen || strings.Count(token, ".") != 2 {
		return "", 0, nil, false
	}
	id, rest, _ := strings.Cut(token, ".")
	expText, tagText, _ := strings.Cut(rest, ".")
	if !validID(id) || len(tagText) != tagB64Len {
		return "", 0, nil, false
	}
	if expText == "" || expText[0] == '0' || len(expText) > 19 {
		return "", 0, nil, false
	}
	for i := 0; i < len(expText); i++ {
		if expText[i] < '0' || expText[i] > '9' {
			return "", 0, nil, false
		}
	}
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil {
		return "", 0, nil, false
	}
	tag, err = tagEncoding.DecodeString(tagText)
	if err != nil || len(tag) != tagLen {
		return "", 0, nil, false
	}
	return id, exp, tag, true
}

// Revoke ends a link now. license is the caller's license ID, or "" for an
// admin, who may revoke any link; a link of another license is reported as
// not found. Revoking a revoked link succeeds and keeps the first time.
func (s *Service) Revoke(ctx context.Context, id, license string) error {
	notFound := portal.Errorf(portal.ENotFound, "no share link %q", truncate(id, 40))
	if !validID(id) {
		return notFound
	}
	err := s.db.Update(ctx, func(tx store.Tx) error {
		v, err := tx.Get(recordKey(id))
		if errors.Is(err, store.ErrNotFound) {
			return notFound
		}
		if err != nil {
			return err
		}
		var l Link
		if err := json.Unmarshal(v, &l); err != nil {
			return err
		}
		if license != "" && l.License != license {
			return notFound
		}
		if l.RevokedAt != nil {
			return nil
		}
		before := l
		now := s.now().UTC().Truncate(time.Second)
		l.RevokedAt = &now
		if v, err = json.Marshal(l); err != nil {
			return err
		}
		if err := tx.Put(recordKey(id), v); err != nil {
			return err
		}
		return audit.Write(ctx, tx, ActionRevoke, target(id), before, l)
	})
	// Also after an error: an Update whose context ended while it
	// committed may have committed.
	s.forget(id)
	if err != nil && portal.ErrorCode(err) != portal.ENotFound {
		return fmt.Errorf("links: revoke %s: %w", id, err)
	}
	return err
}

// List returns a license's links, newest first, including expired and
// revoked ones until Purge removes them. licenseID "" lists every link (for
// admins).
func (s *Service) List(ctx context.Context, licenseID string) ([]Link, error) {
	if licenseID != "" && !validLicense(licenseID) {
		return nil, nil
	}
	var out []Link
	err := s.db.View(ctx, func(tx store.Tx) error {
		if licenseID == "" {
			return tx.Scan([]byte(recordPrefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
				if !validID(string(k[len(recordPrefix):])) {
					return true, nil // an index key
				}
				var l Link
				if err := json.Unmarshal(v, &l); err != nil {
					return false, fmt.Errorf("link %s: %w", k, err)
				}
				out = append(out, l)
				return true, nil
			})
		}
		prefix := indexKey(licenseID, "")
		var ids []string
		err := tx.Scan(prefix, store.ScanOptions{}, func(k, _ []byte) (bool, error) {
			ids = append(ids, string(k[len(prefix):]))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			v, err := tx.Get(recordKey(id))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var l Link
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("link %s: %w", id, err)
			}
			out = append(out, l)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("links: list: %w", err)
	}
	slices.SortFunc(out, func(a, b Link) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Purge deletes the links that expired before t and returns how many. Their
// tokens already fail with link_expired; after Purge they fail with
// link_revoked. Run it from a periodic sweep.
func (s *Service) Purge(ctx context.Context, before time.Time) (int, error) {
	// Each link is two keys; a transaction may write store.MaxTxnOps, so
	// the purge goes in pages, each its own transaction.
	const page = store.MaxTxnOps / 2
	total := 0
	var after []byte // the last record scanned: the next page starts there
	for {
		n := 0
		var last []byte
		var deleted []string
		err := s.db.Update(ctx, func(tx store.Tx) error {
			n, last, deleted = 0, nil, nil
			var dead []Link
			err := tx.Scan([]byte(recordPrefix), store.ScanOptions{After: after}, func(k, v []byte) (bool, error) {
				if !validID(string(k[len(recordPrefix):])) {
					return true, nil
				}
				last = append(last[:0], k...)
				var l Link
				if err := json.Unmarshal(v, &l); err != nil {
					return false, fmt.Errorf("link %s: %w", k, err)
				}
				if l.ExpiresAt.Before(before) {
					dead = append(dead, l)
				}
				return len(dead) < page, nil
			})
			if err != nil {
				return err
			}
			for _, l := range dead {
				if err := tx.Delete(recordKey(l.ID)); err != nil {
					return err
				}
				if err := tx.Delete(indexKey(l.License, l.ID)); err != nil {
					return err
				}
				deleted = append(deleted, l.ID)
				n++
			}
			return nil
		})
		s.forget(deleted...)
		if err != nil {
			return total, fmt.Errorf("links: purge: %w", err)
		}
		total += n
		if n < page {
			return total, nil
		}
		after = last
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
