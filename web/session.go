package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/audit"
	auditcaller "github.com/portaldist/portal/audit/caller"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/tokens"
)

// Kind is what a session stands for.
type Kind string

const (
	// KindLicense is a customer's session, made by signing in with a
	// license key. Its cookie is CookieLicense, for every path.
	KindLicense Kind = "license"
	// KindToken is the admin console's session, made by signing in with an
	// admin or publisher token. Its cookie is CookieToken, for /admin only.
	KindToken Kind = "token"
)

// Cookie names and paths.
const (
	CookieLicense = "portal_session"
	CookieToken   = "portal_admin"
	AdminPath     = "/admin"
)

// Audit actions of sessions.
const (
	ActionSessionCreate = "session.create"
	ActionSessionDelete = "session.delete"
)

// Store key layout (the package owns "web/"):
//
//	web/s/<hex SHA-256 of the cookie value>          -> Session (JSON)
//	web/i/<kind>/<subject>/<session id>               -> the same hex digest
//
// The index finds a license's or a token's sessions, to cap them.
const (
	sessionPrefix = "web/s/"
	indexPrefix   = "web/i/"
)

// Session is a signed-in browser, as stored. The store holds only the
// SHA-256 of the cookie value, so a dump of it cannot be replayed.
type Session struct {
	// ID names the session in audit records and the index; it is not a
	// secret and cannot be used to act.
	ID      string `json:"id"`
	Kind    Kind   `json:"kind"`
	Subject string `json:"subject"` // license ID or token ID
	// Credential is the digest of the key or token signed in with
	// (License.KeyDigest, Token.Digest): a reissued key or a replaced
	// token no longer matches it, which ends the session.
	Credential string `json:"credential_digest"`
	// CSRF is the synchronizer token every form of the session carries.
	CSRF      string    `json:"csrf"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`

	digest string // hex SHA-256 of the cookie value: the record's key
}

// audited is s as audit records hold it: neither the CSRF token nor the
// credential's digest.
func (s Session) audited() map[string]any {
	return map[string]any{"id": s.ID, "kind": s.Kind, "subject": s.Subject,
		"created_at": s.CreatedAt, "expires_at": s.ExpiresAt}
}

// Sessions keeps sessions in the store, so every replica sees the same
// ones. It is safe for concurrent use.
type Sessions struct {
	db         store.DB
	licenses   *licenses.Service
	tokens     *tokens.Service
	ttl        time.Duration
	perSubject int
	now        func() time.Time
	log        *slog.Logger
}

// ErrNoSession is returned for a missing, unknown or expired session.
var ErrNoSession = portal.Errorf(portal.EUnauthorized, "you are not signed in, or your session has ended: sign in again")

func digestOf(cookie string) string {
	d := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(d[:])
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Create starts a session of kind for subject (a license or token ID)
// signed in with the credential whose digest is credential, and returns
// the cookie value (shown only to the browser) and the session. It ends
// the subject's expired sessions and, beyond the cap, its oldest live
// ones, in the same transaction. ctx must carry the caller (audit:
// session.create).
func (ss *Sessions) Create(ctx context.Context, kind Kind, subject, credential string) (string, Session, error) {
	cookie := randomString(32)
	now := ss.now().UTC()
	s := Session{ID: randomString(12), Kind: kind, Subject: subject, Credential: credential,
		CSRF: randomString(32), CreatedAt: now, ExpiresAt: now.Add(ss.ttl), digest: digestOf(cookie)}
	idx := indexPrefix + string(kind) + "/" + subject + "/"
	err := ss.db.Update(ctx, func(tx store.Tx) error {
		type live struct {
			key     string
			created time.Time
			digest  string
		}
		var alive []live
		var dead [][2]string // index key, record digest
		err := tx.Scan([]byte(idx), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			var o Session
			err := store.GetJSON(tx, []byte(sessionPrefix+string(v)), &o)
			switch {
			case errors.Is(err, store.ErrNotFound):
				dead = append(dead, [2]string{string(k), ""})
			case err != nil:
				return false, err
			case !now.Before(o.ExpiresAt):
				dead = append(dead, [2]string{string(k), string(v)})
			default:
				alive = append(alive, live{string(k), o.CreatedAt, string(v)})
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		// Oldest first beyond the cap (the new session is one more).
		for len(alive) >= ss.perSubject {
			oldest := 0
			for i := range alive {
				if alive[i].created.Before(alive[oldest].created) {
					oldest = i
				}
			}
			dead = append(dead, [2]string{alive[oldest].key, alive[oldest].digest})
			alive = append(alive[:oldest], alive[oldest+1:]...)
		}
		for _, d := range dead {
			if err := tx.Delete([]byte(d[0])); err != nil {
				return err
			}
			if d[1] != "" {
				if err := tx.Delete([]byte(sessionPrefix + d[1])); err != nil {
					return err
				}
			}
		}
		if err := store.PutJSON(tx, []byte(sessionPrefix+s.digest), s); err != nil {
			return err
		}
		if err := tx.Put([]byte(idx+s.ID), []byte(s.digest)); err != nil {
			return err
		}
		return audit.Write(ctx, tx, ActionSessionCreate, "session/"+s.ID, nil, s.audited())
	})
	if err != nil {
		return "", Session{}, err
	}
	return cookie, s, nil
}

// Get returns the session of a cookie value, or ErrNoSession when there is
// none or it has expired. It does not re-check what the session stands
// for: see Check.
func (ss *Sessions) Get(ctx context.Context, cookie string) (Session, error) {
	if cookie == "" || len(cookie) > 128 {
		return Session{}, ErrNoSession
	}
	d := digestOf(cookie)
	var s Session
	err := ss.db.View(ctx, func(tx store.Tx) error {
		return store.GetJSON(tx, []byte(sessionPrefix+d), &s)
	})
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, err
	}
	if !ss.now().Before(s.ExpiresAt) {
		return Session{}, ErrNoSession
	}
	s.digest = d
	return s, nil
}

// Delete ends s (audit: session.delete). Deleting an ended session is not
// an error.
func (ss *Sessions) Delete(ctx context.Context, s Session) error {
	return ss.db.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get([]byte(sessionPrefix + s.digest)); errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if err := tx.Delete([]byte(sessionPrefix + s.digest)); err != nil {
			return err
		}
		if err := tx.Delete([]byte(indexPrefix + string(s.Kind) + "/" + s.Subject + "/" + s.ID)); err != nil {
			return err
		}
		return audit.Write(ctx, tx, ActionSessionDelete, "session/"+s.ID, s.audited(), nil)
	})
}

// Check re-checks, now, what s stands for, through the same services the
// API authenticates with, and returns the caller it makes. A license
// session ends (the error says why) once its license is gone, suspended or
// revoked, or its key was reissued; an expired license keeps its session,
// and the pages show the refusals it meets. A token session ends once its
// token is deleted, expired or replaced.
func (ss *Sessions) Check(ctx context.Context, s Session) (access.Caller, error) {
	switch s.Kind {
	case KindLicense:
		l, err := ss.licenses.Get(ctx, s.Subject)
		if portal.ErrorCode(err) == portal.ENotFound {
			return access.Caller{}, ErrNoSession
		}
		if err != nil {
			return access.Caller{}, err
		}
		if !secret.Equal(l.KeyDigest, s.Credential) {
			return access.Caller{}, portal.Errorf(portal.EUnauthorized, "this license's key was replaced: sign in with the new key")
		}
		if l.Status == licenses.Suspended || l.Status == licenses.Revoked {
			var first string
			if ps := l.ProductList(); len(ps) > 0 {
				first = ps[0]
			}
			if err := l.RefusesAll(first, ss.now()); err != nil {
				return access.Caller{}, err
			}
		}
		return access.ForLicense(l), nil
	case KindToken:
		t, err := ss.tokens.ByDigest(ctx, s.Credential)
		if err != nil {
			if portal.ErrorCode(err) == portal.EUnauthorized {
				return access.Caller{}, portal.Errorf(portal.EUnauthorized, "the token of this session was deleted or has expired: sign in again")
			}
			return access.Caller{}, err
		}
		if t.ID != s.Subject {
			return access.Caller{}, ErrNoSession
		}
		return access.ForToken(t), nil
	}
	return access.Caller{}, ErrNoSession
}

// purgeBatch bounds the sessions one purge transaction deletes (two keys
// each, within store.MaxTxnOps).
const purgeBatch = 50

// Purge deletes expired sessions and returns how many. Expiry needs no
// audit record: the session.create record says when it ends.
func (ss *Sessions) Purge(ctx context.Context) (int, error) {
	total := 0
	var after []byte // the last key a full batch deleted: the next starts beyond it
	for {
		now := ss.now()
		n := 0
		more := false
		last := ""
		err := ss.db.Update(ctx, func(tx store.Tx) error {
			n, more, last = 0, false, ""
			var doomed []Session
			err := tx.Scan([]byte(sessionPrefix), store.ScanOptions{After: after}, func(k, v []byte) (bool, error) {
				var s Session
				if json.Unmarshal(v, &s) != nil || !now.Before(s.ExpiresAt) {
					s.digest = strings.TrimPrefix(string(k), sessionPrefix)
					doomed = append(doomed, s)
					if len(doomed) == purgeBatch {
						more = true
						return false, nil
					}
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			for _, s := range doomed {
				if err := tx.Delete([]byte(sessionPrefix + s.digest)); err != nil {
					return err
				}
				if s.ID != "" {
					if err := tx.Delete([]byte(indexPrefix + string(s.Kind) + "/" + s.Subject + "/" + s.ID)); err != nil {
						return err
					}
				}
			}
			n = len(doomed)
			if n > 0 {
				last = doomed[n-1].digest
			}
			return nil
		})
		total += n
		if err != nil || !more {
			return total, err
		}
		after = []byte(sessionPrefix + last)
	}
}

// RunPurge purges expired sessions every interval until ctx ends.
func (h *Handler) RunPurge(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := h.Sessions.Purge(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("web: purge sessions", "err", err)
		}
	}
}

// Gin context keys.
const (
	ctxSession = "web.session" // *Session, set by loadSession when a cookie names one
)

// areaKind is the session kind of the area a path is in: the admin
// console's under AdminPath, the customer's elsewhere.
func areaKind(path string) Kind {
	if path == AdminPath || strings.HasPrefix(path, AdminPath+"/") {
		return KindToken
	}
	return KindLicense
}

func cookieOf(kind Kind) (name, path string) {
	if kind == KindToken {
		return CookieToken, AdminPath
	}
	return CookieLicense, "/"
}

// loadSession finds the session the request's cookie (of the path's area)
// names, without re-checking it: enough for checkCSRF. RequireSession
// re-checks it.
func (h *Handler) loadSession(c *gin.Context) {
	name, _ := cookieOf(areaKind(c.Request.URL.Path))
	if v, err := c.Cookie(name); err == nil && v != "" {
		s, err := h.Sessions.Get(c, v)
		switch {
		case err == nil && s.Kind == areaKind(c.Request.URL.Path):
			c.Set(ctxSession, &s)
		case portal.ErrorCode(err) == portal.EInternal:
			h.Fail(c, err)
			return
		}
	}
	c.Next()
}

// SessionOf returns the request's session, or nil when it has none. After
// RequireSession it is the re-checked session of the caller in the
// request's context (access.FromContext).
func SessionOf(c *gin.Context) *Session {
	v, ok := c.Get(ctxSession)
	if !ok {
		return nil
	}
	return v.(*Session)
}

// RequireSession lets through only requests with a live session of kind,
// re-checked now (Sessions.Check), and puts its caller in the request's
// context (access.FromContext, and the audit actor). Without a session, a
// GET is sent (303) to the area's sign-in page and another method gets
// the sign-in required error page (401). A session whose license or token
// no longer stands is ended, its cookie cleared, and the refusal shown
// (license_suspended, ...).
func (h *Handler) RequireSession(kind Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := SessionOf(c)
		if s == nil || s.Kind != kind {
			if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
				c.Abort()
				c.Redirect(http.StatusSeeOther, signInPath(kind))
				return
			}
			h.Fail(c, ErrNoSession)
			return
		}
		caller, err := h.Sessions.Check(c, *s)
		if err != nil {
			if portal.ErrorCode(err) != portal.EInternal {
				h.EndSession(c)
			}
			h.Fail(c, err)
			return
		}
		c.Request = c.Request.WithContext(auditcaller.NewContext(c.Request.Context(), caller))
		c.Next()
	}
}

func signInPath(kind Kind) string {
	if kind == KindToken {
		return AdminPath
	}
	return "/"
}

// StartSession signs the browser in as caller (a license or a token
// caller, already authenticated by Server.CheckLicenseKey or CheckToken):
// it creates the session, sets its cookie and puts the caller in the
// request's context.
func (h *Handler) StartSession(c *gin.Context, caller access.Caller) error {
	var kind Kind
	var subject, cred string
	switch {
	case caller.License() != nil:
		kind, subject, cred = KindLicense, caller.License().ID, caller.License().KeyDigest
	case caller.Token() != nil:
		kind, subject, cred = KindToken, caller.Token().ID, caller.Token().Digest
	default:
		return ErrNoSession
	}
	ctx := auditcaller.NewContext(c.Request.Context(), caller)
	cookie, s, err := h.Sessions.Create(ctx, kind, subject, cred)
	if err != nil {
		return err
	}
	c.Request = c.Request.WithContext(ctx)
	c.Set(ctxSession, &s)
	h.setCookie(c, kind, cookie, int(h.opts.SessionTTL.Seconds()))
	return nil
}

// EndSession ends the request's session, if any, and clears its cookie.
// A failure to delete the record is logged: the cookie is cleared anyway,
// and the record expires.
func (h *Handler) EndSession(c *gin.Context) {
	kind := areaKind(c.Request.URL.Path)
	if s := SessionOf(c); s != nil {
		kind = s.Kind
		if err := h.Sessions.Delete(c, *s); err != nil {
			h.log.Warn("web: end session", "err", err)
		}
		c.Set(ctxSession, (*Session)(nil))
		delete(c.Keys, ctxSession)
	}
	h.setCookie(c, kind, "", -1)
}

// setCookie sets (maxAge > 0) or clears (maxAge < 0) a session cookie:
// HttpOnly, SameSite=Strict, Secure on TLS or behind an https public URL.
func (h *Handler) setCookie(c *gin.Context, kind Kind, value string, maxAge int) {
	name, path := cookieOf(kind)
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure(c),
	})
}

func (h *Handler) secure(c *gin.Context) bool {
	return c.Request.TLS != nil || h.opts.SecureCookies
}

// PurgeInterval is how often RunPurge deletes expired sessions.
const PurgeInterval = 10 * time.Minute
