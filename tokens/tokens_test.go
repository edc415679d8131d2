package tokens_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

var t0 = time.Date(2025, 6, 1, 10, 30, 0, 0, time.UTC)

// bg is the context of the tests' calls: creating and deleting a token is
// audited and needs an actor.
var bg = audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})

func newService(t *testing.T) *tokens.Service {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// Sub-second clock: CreatedAt is truncated to the second.
	return tokens.New(db, func() time.Time { return t0.Add(500 * time.Millisecond) })
}

func TestCreate(t *testing.T) {
	svc := newService(t)
	ctx := bg
	tests := []struct {
		name     string
		tokName  string
		role     string
		products []string
		code     string // "" = created
	}{
		{"admin", "ci admin", tokens.Admin, nil, ""},
		{"admin, empty products", "", tokens.Admin, []string{}, ""},
		{"publisher", "release bot", tokens.Publisher, []string{"app", "tool"}, ""},
		{"publisher for a product that does not exist yet", "", tokens.Publisher, []string{"future-app"}, ""},
		{"admin with products", "", tokens.Admin, []string{"app"}, portal.EInvalid},
		{"publisher without products", "", tokens.Publisher, nil, portal.EInvalid},
		{"publisher with empty products", "", tokens.Publisher, []string{}, portal.EInvalid},
		{"publisher with a bad slug", "", tokens.Publisher, []string{"app", "../x"}, portal.EInvalid},
		{"publisher with an empty slug", "", tokens.Publisher, []string{""}, portal.EInvalid},
		{"publisher with 101 products", "", tokens.Publisher, func() []string {
			var ps []string
			for i := range 101 {
				ps = append(ps, "p"+strings.Repeat("x", i%50)+string(rune('a'+i%26)))
			}
			return ps
		}(), portal.EInvalid},
		{"bad role", "", "root", nil, portal.EInvalid},
		{"empty role", "", "", nil, portal.EInvalid},
		{"role case", "", "Admin", nil, portal.EInvalid},
		{"customer role", "", "customer", nil, portal.EInvalid},
		{"control char in name", "a\x00b", tokens.Admin, nil, portal.EInvalid},
		{"long name", strings.Repeat("n", 201), tokens.Admin, nil, portal.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, raw, err := svc.Create(ctx, tt.tokName, tt.role, tt.products)
			if tt.code != "" {
				if c := portal.ErrorCode(err); c != tt.code {
					t.Fatalf("Create = %v (code %q), want %q", err, c, tt.code)
				}
				if raw != "" || tok.ID != "" {
					t.Errorf("refused Create returned secret %q, id %q", raw, tok.ID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(raw, tokens.Prefix+"_") || !secret.WellFormed(raw, tokens.Prefix) {
				t.Fatalf("token %q is not a well-formed %s_ secret", raw, tokens.Prefix)
			}
			if bits := (len(raw) - len(tokens.Prefix) - 1) * 5; bits < 128 {
				t.Errorf("token carries %d bits", bits)
			}
			wantName := tt.tokName
			if wantName == "" {
				wantName = tt.role
			}
			if tok.ID == "" || tok.Role != tt.role || tok.Name != wantName || !tok.CreatedAt.Equal(t0) ||
				tok.Hint != secret.Hint(raw) || tok.Digest != secret.Digest(raw) || tok.Public().Digest != "" {
				t.Errorf("created %+v", tok)
			}
			got, err := svc.Authenticate(ctx, raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tok.ID || got.Role != tt.role || strings.Join(got.Products, ",") != strings.Join(tt.products, ",") {
				t.Errorf("Authenticate = %+v, want %+v", got, tok)
			}
		})
	}
}

func TestAuthenticateAndDelete(t *testing.T) {
	svc := newService(t)
	ctx := bg
	if found, err := svc.Any(ctx); err != nil || found {
		t.Fatalf("Any on an empty store = %v, %v", found, err)
	}
	admin, adminRaw, err := svc.Create(ctx, "admin", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, pubRaw, err := svc.Create(ctx, "bot", tokens.Publisher, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if found, err := svc.Any(ctx); err != nil || !found {
		t.Fatalf("Any = %v, %v", found, err)
	}
	if adminRaw == pubRaw || admin.ID == pub.ID {
		t.Fatal("two tokens share a secret or id")
	}

	rest := strings.TrimPrefix(adminRaw, "ptk_")
	flipped := []byte(adminRaw)
	if flipped[5] == 'a' {
		flipped[5] = 'b'
	} else {
		flipped[5] = 'a'
	}
	bad := []string{
		"", "ptk_", "ptk", "Bearer " + adminRaw, adminRaw + " ", adminRaw[:len(adminRaw)-1], adminRaw + "a",
		strings.ToUpper(adminRaw), string(flipped), "lic_" + rest, secret.New(tokens.Prefix),
		admin.Digest, admin.Hint, admin.ID, strings.Repeat("p", 5000),
	}
	for _, b := range bad {
		if _, err := svc.Authenticate(ctx, b); portal.ErrorCode(err) != portal.EUnauthorized {
			t.Errorf("Authenticate(%.30q) = %v, want unauthorized", b, err)
		}
	}

	// Deleting one token stops it at once and leaves the other working.
	if err := svc.Delete(ctx, pub.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, pubRaw); portal.ErrorCode(err) != portal.EUnauthorized {
		t.Errorf("deleted token authenticates: %v", err)
	}
	if got, err := svc.Authenticate(ctx, adminRaw); err != nil || got.ID != admin.ID {
		t.Errorf("other token after delete: %+v, %v", got, err)
	}
	for _, id := range []string{pub.ID, "nope", "", strings.Repeat("a", 65)} {
		if err := svc.Delete(ctx, id); portal.ErrorCode(err) != portal.ENotFound {
			t.Errorf("Delete(%.20q) = %v, want not_found", id, err)
		}
	}
	if err := svc.Delete(ctx, admin.ID); err != nil {
		t.Fatal(err)
	}
	if found, err := svc.Any(ctx); err != nil || found {
		t.Errorf("Any after deleting every token = %v, %v", found, err)
	}
}

func TestSecretsNotInDatabaseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := tokens.New(db, nil)
	ctx := bg
	var raws []string
	for _, role := range []string{tokens.Admin, tokens.Publisher, tokens.Admin} {
		var products []string
		if role == tokens.Publisher {
			products = []string{"app"}
		}
		_, raw, err := svc.Create(ctx, "", role, products)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range raws {
		if bytes.Contains(file, []byte(raw)) || bytes.Contains(file, []byte(strings.TrimPrefix(raw, "ptk_"))) {
			t.Errorf("the database file holds token %s...", raw[:8])
		}
		if !bytes.Contains(file, []byte(secret.Digest(raw))) {
			t.Errorf("the database file lacks the digest of %s...: scanning the wrong file?", raw[:8])
		}
	}
}

func TestMayPublish(t *testing.T) {
	tests := []struct {
		tok     tokens.Token
		product string
		want    bool
	}{
		{tokens.Token{Role: tokens.Admin}, "app", true},
		{tokens.Token{Role: tokens.Admin}, "anything", true},
		{tokens.Token{Role: tokens.Publisher, Products: []string{"app", "tool"}}, "app", true},
		{tokens.Token{Role: tokens.Publisher, Products: []string{"app", "tool"}}, "tool", true},
		{tokens.Token{Role: tokens.Publisher, Products: []string{"app", "tool"}}, "other", false},
		{tokens.Token{Role: tokens.Publisher, Products: []string{"app"}}, "app-2", false},
		{tokens.Token{Role: tokens.Publisher, Products: []string{"app"}}, "ap", false},
		{tokens.Token{Role: tokens.Publisher, Products: []string{"app"}}, "", false},
		{tokens.Token{Role: tokens.Publisher}, "app", false},
		{tokens.Token{Role: "", Products: []string{"app"}}, "app", false},
		{tokens.Token{Role: "customer", Products: []string{"app"}}, "app", false},
	}
	for _, tt := range tests {
		if got := tt.tok.MayPublish(tt.product); got != tt.want {
			t.Errorf("%+v.MayPublish(%q) = %v, want %v", tt.tok, tt.product, got, tt.want)
		}
	}
}
