package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// from returns a client whose requests come from the loopback address ip.
func (e *env) from(ip string) func(method, path, auth string) resp {
	c := &http.Client{
		Transport:     &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	e.t.Cleanup(c.CloseIdleConnections)
	return func(method, path, auth string) resp {
		e.t.Helper()
		req, _ := http.NewRequest(method, e.url+path, nil)
		req.Header.Set("Authorization", auth)
		res, err := c.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return resp{status: res.StatusCode, header: res.Header, body: b}
	}
}

// badKeysWithHint returns n well-formed keys that share the public hint of
// key (its prefix and first four random characters) and are not key.
func badKeysWithHint(key string, n int) []string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	hint := key[:len("lic_")+4]
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		tail := []byte(strings.Repeat("z", 28))
		tail[26], tail[27] = alphabet[i/32%32], alphabet[i%32]
		if b := hint + string(tail); b != key {
			out = append(out, b)
		}
	}
	return out
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// floodUntilLimited sends bad credentials until one gets 429 (with
// Retry-After), and fails the test if none does.
func floodUntilLimited(t *testing.T, send func(method, path, auth string) resp, path string, bad []string) {
	t.Helper()
	for _, b := range bad {
		r := send("GET", path, b)
		switch r.status {
		case 401:
		case 429:
			if r.header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			return
		default:
			t.Fatalf("bad credential %q: %d", b, r.status)
		}
	}
	t.Fatalf("%d bad credentials were never limited", len(bad))
}

// TestBadKeysSharingAHintDoNotLockOutTheKey: someone who knows a victim's
// public key hint floods keys with that hint from another address; the
// hint is limited, yet the victim's own key keeps working, from its address
// and from the attacker's.
func TestBadKeysSharingAHintDoNotLockOutTheKey(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	_, key := e.license(map[string]any{"customer": "Victim", "product": "acme"})
	attacker, victim := e.from("127.0.0.2"), e.from("127.0.0.3")
	var bad []string
	for _, b := range badKeysWithHint(key, 40) {
		bad = append(bad, "License "+b)
	}
	floodUntilLimited(t, attacker, "/v1/me", bad)
	// The hint is over its limit: the next bad key with it, from a fresh
	// address, is refused too.
	if r := e.from("127.0.0.4")("GET", "/v1/me", bad[len(bad)-1]); r.status != 429 {
		t.Fatalf("bad key with a limited hint from another address: %d", r.status)
	}
	for name, send := range map[string]func(string, string, string) resp{"victim": victim, "attacker": attacker} {
		if r := send("GET", "/v1/me", "License "+key); r.status != 200 {
			t.Fatalf("the victim's key from the %s's address: %d", name, r.status)
		}
	}
}

// TestBadKeysFromAnAddressDoNotLockOutValidCredentials: after a flood of
// bad license keys and tokens from one address (a NAT), an admin token, a
// publisher token and a license key from that address are all accepted,
// even ones never used before; bad ones keep getting 429.
func TestBadKeysFromAnAddressDoNotLockOutValidCredentials(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	nat := e.from("127.0.0.5")
	var bad []string
	for i := range 40 {
		if i%2 == 0 {
			bad = append(bad, fmt.Sprintf("License lic_%032d", i))
		} else {
			bad = append(bad, fmt.Sprintf("Bearer ptk_%032d", i))
		}
	}
	floodUntilLimited(t, nat, "/v1/products/acme", bad)

	// Credentials made after the flood, never seen by the server before.
	_, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	admin := e.token("admin")
	pub := e.token("publisher", "acme")
	for _, c := range []struct{ name, auth string }{
		{"old admin token", bearer(e.admin)},
		{"new admin token", bearer(admin)},
		{"publisher token", bearer(pub)},
		{"license key", "License " + key},
		{"license key as Basic", "Basic " + basic("license", key)},
	} {
		if r := nat("GET", "/v1/products/acme", c.auth); r.status != 200 {
			t.Errorf("%s from the flooded address: %d", c.name, r.status)
		}
	}
	for _, b := range []string{"License lic_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "Bearer ptk_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "License not-even-a-key"} {
		r := nat("GET", "/v1/products/acme", b)
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Errorf("bad credential %q past the limit: %d, Retry-After %q", b, r.status, r.header.Get("Retry-After"))
		}
	}
	// A minute later the address starts over.
	e.advance(61e9)
	if r := nat("GET", "/v1/products/acme", bad[0]); r.status != 401 {
		t.Fatalf("bad key a minute later: %d, want 401", r.status)
	}
}

// countingDB counts the transactions run on a store.
type countingDB struct {
	store.DB
	txns atomic.Int64
}

func (d *countingDB) View(ctx context.Context, fn func(store.Tx) error) error {
	d.txns.Add(1)
	return d.DB.View(ctx, fn)
}

func (d *countingDB) Update(ctx context.Context, fn func(store.Tx) error) error {
	d.txns.Add(1)
	return d.DB.Update(ctx, fn)
}

// TestLimitedBadKeysDoNotTouchTheStore: past the limit, bad license keys
// and tokens are refused from memory; the store sees no transaction.
func TestLimitedBadKeysDoNotTouchTheStore(t *testing.T) {
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	db := &countingDB{DB: bdb}
	catalog := releases.New(db, nil)
	lic := licenses.New(db, catalog, nil)
	tok := tokens.New(db, nil)
	ctx := cliCtx
	_, admin, err := tok.Create(ctx, "admin", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Deps{Store: db, Catalog: catalog, Licenses: lic, Tokens: tok}, server.Options{AuthFailuresPerMinute: 5})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	get := func(auth string) int {
		req, _ := http.NewRequest("GET", ts.URL+"/v1/products", nil)
		req.Header.Set("Authorization", auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for i := range 5 {
		if st := get(fmt.Sprintf("License lic_%032d", i)); st != 401 {
			t.Fatalf("bad key %d under the limit: %d", i, st)
		}
	}
	before := db.txns.Load()
	for i := range 50 {
		auth := fmt.Sprintf("License lic_%032d", 100+i)
		if i%2 == 1 {
			auth = fmt.Sprintf("Bearer ptk_%032d", 100+i)
		}
		if st := get(auth); st != 429 {
			t.Fatalf("bad credential %d past the limit: %d", i, st)
		}
	}
	if n := db.txns.Load() - before; n != 0 {
		t.Fatalf("50 limited bad credentials ran %d store transactions, want 0", n)
	}
	if st := get(bearer(admin)); st != 200 {
		t.Fatalf("the admin token from the limited address: %d", st)
	}
}
