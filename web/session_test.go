package web_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/web"
)

// clock is a test clock that a test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// signedIn reports whether a page is the signed-in customer page.
func signedIn(p page) bool {
	return p.Status == http.StatusOK && strings.Contains(p.Body, `id="lic-h"`)
}

// TestSessionLifetime: a session ends 12 hours after sign-in, and the purge
// then deletes its record.
func TestSessionLifetime(t *testing.T) {
	clk := &clock{t: time.Now().UTC()}
	f := newFixtureWith(t, nil, app.Options{Now: clk.Now})
	f.product("app", "App")
	_, key := f.license("ACME", []string{"app"}, nil)
	b := f.browser()
	b.signIn(key)
	if p := b.do("GET", "/", nil); !signedIn(p) {
		t.Fatalf("not signed in:\n%s", p.Body)
	}
	clk.Add(web.DefaultSessionTTL - time.Minute)
	if p := b.do("GET", "/", nil); !signedIn(p) {
		t.Fatal("the session ended before 12 hours")
	}
	// More sessions than one purge transaction deletes, some of them
	// live.
	for i := range 130 {
		if _, _, err := f.App.Web.Sessions.Create(cliCtx, web.KindLicense, fmt.Sprintf("lic%03d", i), "d"); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(2 * time.Minute)
	if p := b.do("GET", "/", nil); signedIn(p) || !strings.Contains(p.Body, `id="key"`) {
		t.Fatalf("the session still works after 12 hours:\n%s", p.Body)
	}
	if n, err := f.App.Web.Sessions.Purge(cliCtx); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want the one expired session", n, err)
	}
	if n := countKeys(t, f, "web/"); n != 2*130 {
		t.Fatalf("%d session keys after the first purge, want the 130 live sessions and their index", n)
	}
	clk.Add(web.DefaultSessionTTL)
	if n, err := f.App.Web.Sessions.Purge(cliCtx); err != nil || n != 130 {
		t.Fatalf("purge: %d, %v; want 130", n, err)
	}
	if n := countKeys(t, f, "web/"); n != 0 {
		t.Fatalf("%d session keys left after the purge", n)
	}
}

func countKeys(t *testing.T, f *fixture, prefix string) int {
	t.Helper()
	n := 0
	err := f.App.DB.View(cliCtx, func(tx store.Tx) error {
		return tx.Scan([]byte(prefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			n++
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSessionEnds: a license session ends at once when the license is
// suspended, revoked or reissued, each with its reason, and the cookie is
// cleared; an expired license keeps its session.
func TestSessionEnds(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	for _, tc := range []struct {
		name   string
		change func(id string) error
		code   string
	}{
		{"suspend", func(id string) error { _, err := f.App.Licenses.Suspend(cliCtx, id); return err }, "license_suspended"},
		{"revoke", func(id string) error { _, err := f.App.Licenses.Revoke(cliCtx, id); return err }, "license_revoked"},
		{"reissue", func(id string) error { _, _, err := f.App.Licenses.Reissue(cliCtx, id); return err }, "key was replaced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, key := f.license("ACME "+tc.name, []string{"app"}, nil)
			b := f.browser()
			b.signIn(key)
			cookie := b.cookies[web.CookieLicense]
			if p := b.do("GET", "/", nil); !signedIn(p) {
				t.Fatal("not signed in")
			}
			if err := tc.change(l.ID); err != nil {
				t.Fatal(err)
			}
			p := b.do("GET", "/", nil)
			if signedIn(p) || !strings.Contains(p.Body, tc.code) || p.Status < 400 {
				t.Fatalf("after %s: %d\n%s", tc.name, p.Status, p.Body)
			}
			if c := p.Cookie[web.CookieLicense]; c == nil || c.MaxAge >= 0 {
				t.Errorf("the cookie is not cleared: %+v", c)
			}
			// The old cookie, sent again, does nothing either.
			if p := f.do("GET", "/", []*http.Cookie{cookie}, nil); signedIn(p) {
				t.Fatal("the old cookie still works")
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		past := time.Now().Add(-time.Hour)
		_, key := f.license("ACME expired", []string{"app"}, func(l *licenses.License) {
			l.ExpiresAt = &past
		})
		b := f.browser()
		b.signIn(key)
		p := b.do("GET", "/", nil)
		if !signedIn(p) || !strings.Contains(p.Body, "license_expired") || !strings.Contains(p.Body, "maintain") {
			t.Fatalf("an expired license's page: %d\n%s", p.Status, p.Body)
		}
	})
}

// TestSessionCap: beyond web.sessions_per_subject live sessions, signing
// in ends the oldest.
func TestSessionCap(t *testing.T) {
	f := newFixture(t, map[string]string{"web.sessions_per_subject": "2"})
	f.product("app", "App")
	_, key := f.license("ACME", []string{"app"}, nil)
	var bs []*browser
	for range 3 {
		b := f.browser()
		b.signIn(key)
		bs = append(bs, b)
		time.Sleep(2 * time.Millisecond) // distinct creation times
	}
	for i, want := range []bool{false, true, true} {
		if got := signedIn(bs[i].do("GET", "/", nil)); got != want {
			t.Errorf("session %d signed in: %v, want %v", i, got, want)
		}
	}
	if n := countKeys(t, f, "web/s/"); n != 2 {
		t.Errorf("%d sessions stored, want 2", n)
	}
}

// TestStoreHoldsNoSecret: neither the cookie nor the license key is in
// the store, and neither reaches the log.
func TestStoreHoldsNoSecret(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	w := lockedWriter{&mu, &logs}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixtureWith(t, map[string]string{"log.access": "true"}, app.Options{Logger: log, AccessLog: w})
	f.product("app", "App")
	_, key := f.license("ACME", []string{"app"}, nil)
	b := f.browser()
	b.signIn(key)
	b.signIn(key + "x") // a wrong key: logged nowhere either
	cookie := b.cookies[web.CookieLicense].Value
	err := f.App.DB.View(cliCtx, func(tx store.Tx) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			for _, s := range []string{cookie, key} {
				if bytes.Contains(k, []byte(s)) || bytes.Contains(v, []byte(s)) {
					t.Errorf("the store holds a secret under %q", k)
				}
			}
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "/signin") {
		t.Fatalf("the access log did not log the sign-in (the check below would prove nothing):\n%s", logs.String())
	}
	for _, s := range []string{cookie, key, key[:12]} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log holds a secret:\n%s", logs.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCSRF: every form post without the right token is refused with 403
// before it changes anything.
func TestCSRF(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "", "", file{"app.tar.gz", "linux", "amd64", []byte("app")})
	l, key := f.license("ACME", []string{"app"}, nil)
	b := f.browser()
	b.signIn(key)
	home := b.do("GET", "/", nil)
	token := csrfOf(t, home.Body)
	// One link to revoke.
	if p := b.do("POST", "/share", url.Values{"csrf": {token}, "build": {"app|1.0.0|app.tar.gz"}, "ttl": {"24h"}}); p.Status != http.StatusCreated {
		t.Fatalf("create a link: %d\n%s", p.Status, p.Body)
	}
	links, _ := f.App.Links.List(cliCtx, l.ID)
	if len(links) != 1 {
		t.Fatalf("%d links", len(links))
	}
	other := f.browser()
	otherHome := other.do("GET", "/", nil)

	forms := map[string]url.Values{
		"/signin":       {"key": {key}},
		"/signout":      {},
		"/download":     {"product": {"app"}, "version": {"1.0.0"}, "filename": {"app.tar.gz"}},
		"/share":        {"build": {"app|1.0.0|app.tar.gz"}, "ttl": {"24h"}},
		"/share/revoke": {"id": {links[0].ID}},
	}
	for path, form := range forms {
		for _, tc := range []struct {
			name  string
			token []string
		}{
			{"none", nil},
			{"empty", []string{""}},
			{"wrong", []string{strings.Repeat("A", len(token))}},
			{"another browser's", []string{csrfOf(t, otherHome.Body)}},
			{"truncated", []string{token[:len(token)-1]}},
		} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				v := url.Values{}
				for k, vs := range form {
					v[k] = vs
				}
				if tc.token != nil {
					v["csrf"] = tc.token
				}
				p := b.do("POST", path, v)
				if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "forbidden") {
					t.Fatalf("%d\n%s", p.Status, p.Body)
				}
				if p.Header.Get("Location") != "" || len(p.Cookie) != 0 && p.Cookie[web.CookieLicense] != nil {
					t.Fatalf("a refused post redirected or set the session cookie: %v %v", p.Header, p.Cookie)
				}
			})
		}
	}
	// Nothing changed: the session works, one live link, no download.
	if p := b.do("GET", "/", nil); !signedIn(p) {
		t.Fatal("the session ended")
	}
	links, _ = f.App.Links.List(cliCtx, l.ID)
	if len(links) != 1 || links[0].RevokedAt != nil {
		t.Fatalf("links after the refused posts: %+v", links)
	}
	if q, _ := f.App.Downloads.Quota(cliCtx, &l); q.Used != 0 {
		t.Fatalf("%d downloads counted", q.Used)
	}
	// A sign-in without a token set no session in a fresh browser.
	fresh := f.browser()
	fresh.do("GET", "/", nil)
	if p := fresh.do("POST", "/signin", url.Values{"key": {key}}); p.Status != http.StatusForbidden || p.Cookie[web.CookieLicense] != nil {
		t.Fatalf("sign-in without a token: %d %v", p.Status, p.Cookie)
	}
}

// TestTokenSession: an admin session stands while its token does, and
// ends once the token is deleted.
func TestTokenSession(t *testing.T) {
	f := newFixture(t, nil)
	tok, _, err := f.App.Tokens.Create(cliCtx, "ops", "admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	ss := f.App.Web.Sessions
	cookie, s, err := ss.Create(cliCtx, web.KindToken, tok.ID, tok.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ss.Get(cliCtx, cookie)
	if err != nil || got.ID != s.ID {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	if c, err := ss.Check(cliCtx, got); err != nil || c.Token() == nil || c.Token().ID != tok.ID {
		t.Fatalf("Check: %v", err)
	}
	if _, err := ss.Get(cliCtx, cookie+"x"); err != web.ErrNoSession {
		t.Fatalf("another cookie: %v", err)
	}
	if err := f.App.Tokens.Delete(cliCtx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Check(cliCtx, got); err == nil || !strings.Contains(err.Error(), "deleted or has expired") {
		t.Fatalf("Check after the token's deletion: %v", err)
	}
}

// TestSessionAudit: signing in and out are audited as the license, with
// neither the cookie, the CSRF token nor the key's digest in the records.
func TestSessionAudit(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	l, key := f.license("ACME", []string{"app"}, nil)
	b := f.browser()
	b.signIn(key)
	home := b.do("GET", "/", nil)
	token := csrfOf(t, home.Body)
	if p := b.do("POST", "/signout", url.Values{"csrf": {token}}); p.Status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", p.Status)
	}
	recs, _, err := audit.New(f.App.DB).List(cliCtx, audit.Filter{TargetPrefix: "session/"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		actions = append(actions, r.Action)
		if r.Actor.Kind != audit.KindLicense || r.Actor.ID != l.ID {
			t.Errorf("%s by %v, want the license %s", r.Action, r.Actor, l.ID)
		}
		raw := string(r.Before) + string(r.After)
		if strings.Contains(raw, token) || strings.Contains(raw, l.KeyDigest) || strings.Contains(raw, "csrf") {
			t.Errorf("%s holds a secret: %s", r.Action, raw)
		}
	}
	if strings.Join(actions, ",") != "session.delete,session.create" && strings.Join(actions, ",") != "session.create,session.delete" {
		t.Fatalf("session audit records: %v", actions)
	}
}
