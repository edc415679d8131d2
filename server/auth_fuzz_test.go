package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/tokens"
)

// FuzzAuthorization sends arbitrary Authorization headers through the
// server's real handler (app.Open on a temporary data directory) to
// GET /v1/me, which answers 200 only to a token or a license. The answer is
// always 200, 401 or 429, never a panic or a 5xx; a 401 never asks for
// Basic credentials (electron-updater would hang); no refusal echoes the
// credential; and a 200 goes only to a header whose credential is exactly
// the admin token (Bearer), the license key (License) or license:<key>
// (Basic), the scheme in any case and the credential in surrounding white
// space.
//
// An input is the header as prefix + secret + suffix, where secret is
// nothing, the admin token, the license key or the Basic form of the key,
// so the fuzzer also explores edits of valid credentials. Each request comes
// from its own client address so that the per-address failure limit does
// not hide the rest of the handler behind 429.
func FuzzAuthorization(f *testing.F) {
	ctx := cliCtx
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": f.TempDir(), "log.access": "false", "log.level": "error",
	}})
	if err != nil {
		f.Fatal(err)
	}
	a, err := app.Open(ctx, cfg, app.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close(context.Background()) })
	_, admin, err := a.Tokens.Create(ctx, "root", tokens.Admin, nil)
	if err != nil {
		f.Fatal(err)
	}
	var addr atomic.Uint32
	send := func(method, path, auth string, body any) *httptest.ResponseRecorder {
		var b []byte
		if body != nil {
			b, _ = json.Marshal(body)
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(b))
		n := addr.Add(1)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:40000", byte(n>>16), byte(n>>8), byte(n))
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		a.Server.ServeHTTP(rec, req)
		return rec
	}
	if rec := send("POST", "/v1/products", "Bearer "+admin, map[string]string{"slug": "acme", "name": "Acme", "distribution": "licensed"}); rec.Code != 201 {
		f.Fatalf("create product: %d %s", rec.Code, rec.Body)
	}
	rec := send("POST", "/v1/licenses", "Bearer "+admin, map[string]string{"customer": "c", "product": "acme"})
	if rec.Code != 201 {
		f.Fatalf("create license: %d %s", rec.Code, rec.Body)
	}
	var created struct{ Key string }
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil || created.Key == "" {
		f.Fatalf("create license: %s", rec.Body)
	}
	key := created.Key
	// The update index learns of the new product through the store's
	// watch, a moment after the write: wait for it (bounded) so that a
	// license's 200 is what the fuzzing sees.
	for i := 0; send("GET", "/v1/me", "License "+key, nil).Code != http.StatusOK; i++ {
		if i == 2000 {
			f.Fatal("GET /v1/me with the new license never answered 200")
		}
		time.Sleep(5 * time.Millisecond)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("license:" + key))
	secrets := []string{"", admin, key, basic}

	for _, s := range []struct {
		prefix string
		secret uint8
		suffix string
	}{
		{"Bearer ", 1, ""}, {"License ", 2, ""}, {"Basic ", 3, ""}, {"bearer  ", 1, " \t"}, {"LICENSE ", 2, ""},
		{"Bearer ", 2, ""}, {"License ", 1, ""}, {"Bearer ", 1, "x"}, {"Bearer x", 1, ""}, {"Basic ", 0, "bGljZW5zZQ=="},
		{"Basic ", 0, "!!!"}, {"Basic ", 0, base64.StdEncoding.EncodeToString([]byte("admin:x"))}, {"Negotiate ", 1, ""},
		{"Bearer", 0, ""}, {"", 1, ""}, {"Bearer \x00", 1, ""}, {"Bearer ", 1, "\u0085"}, {"Digest ", 0, strings.Repeat("a", 4096)},
	} {
		f.Add(s.prefix, s.secret, s.suffix)
	}
	f.Fuzz(func(t *testing.T, prefix string, secret uint8, suffix string) {
		h := prefix + secrets[int(secret)%len(secrets)] + suffix
		if h == "" {
			return // anonymous: not an Authorization header
		}
		rec := send("GET", "/v1/me", h, nil)
		switch rec.Code {
		case http.StatusOK:
			if !exactCredential(h, admin, key) {
				t.Fatalf("Authorization %q was accepted but is not exactly a valid credential", h)
			}
		case http.StatusUnauthorized, http.StatusTooManyRequests:
			if w := strings.ToLower(rec.Header().Get("WWW-Authenticate")); strings.HasPrefix(w, "basic") || strings.HasPrefix(w, "digest") {
				t.Fatalf("Authorization %q: 401 with WWW-Authenticate %q", h, w)
			}
			_, cred, _ := strings.Cut(h, " ")
			if cred = strings.TrimSpace(cred); len(cred) >= 8 && strings.Contains(rec.Body.String(), cred) {
				t.Fatalf("Authorization %q: the refusal echoes the credential: %s", h, rec.Body)
			}
		default:
			t.Fatalf("Authorization %q: status %d %s", h, rec.Code, rec.Body)
		}
	})
}

// exactCredential reports whether h carries exactly the admin token or the
// license key in one of the accepted forms.
func exactCredential(h, admin, key string) bool {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok {
		return false
	}
	cred = strings.TrimFunc(cred, unicode.IsSpace)
	switch strings.ToLower(scheme) {
	case "bearer":
		return cred == admin
	case "license":
		return cred == key
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		return err == nil && string(raw) == "license:"+key
	}
	return false
}
