package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// TestKeysRotateAndSeal: a product with a shared key of the first format
// is moved to split keys in two steps, /keys answering the transition;
// keys seal seals what is plaintext once a master key is set.
func TestKeysRotateAndSeal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	load := func() *configs.Config {
		cfg, err := configs.Load(configs.LoadOptions{Env: os.Environ(), Flags: map[string]string{"data_dir": dir}})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	t.Setenv("PORTAL_SIGNING_MASTER_KEY", "")
	a, err := app.OpenStore(ctx, load(), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := signing.GenerateKey()
	plain, _ := signing.NewSealer(nil)
	stored, _ := plain.For("app").Seal(k)
	// The catalog audits its changes: the test acts as an offline command.
	cli := audit.WithActor(ctx, audit.Actor{Kind: audit.KindCLI})
	if _, err := a.Catalog.CreateProduct(cli, releases.Product{Slug: "app", Name: "App", Distribution: releases.Open, SigningKey: stored}); err != nil {
		t.Fatal(err)
	}
	orig := signing.SharedKeySet(k).Public()
	a.Close(ctx)

	run := func(fn func([]string, *bytes.Buffer) error, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := fn(append(args, "--data-dir", dir), &out); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	rotate := func(args []string, out *bytes.Buffer) error { return keysRotate(args, out) }
	seal := func(args []string, out *bytes.Buffer) error { return keysSeal(args, out) }
	describe := func() signing.Keys {
		t.Helper()
		return describeKeys(t, load())
	}

	var out bytes.Buffer
	if err := keysRotate([]string{"--data-dir", dir, "--product", "app", "--activate"}, &out); err == nil {
		t.Fatal("--activate with nothing staged succeeded")
	}
	got := run(rotate, "--product", "app")
	d := describe()
	if d.Next == nil || d.Current != orig || !strings.Contains(got, d.Next.Sparkle) || !strings.Contains(got, d.Next.Minisign) {
		t.Fatalf("after staging: %+v\n%s", d, got)
	}
	next := *d.Next
	run(rotate, "--product", "app", "--activate")
	d = describe()
	if d.Next != nil || d.Current != next || !d.Current.Separate || len(d.Previous) != 1 ||
		d.Previous[0].Sparkle != orig.Sparkle || d.Previous[0].Minisign != orig.Minisign {
		t.Fatalf("after activating: %+v", d)
	}

	// /keys: the signing keys at the top, the replaced ones as previous.
	a, err = app.Open(ctx, load(), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.Server.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/products/app/keys", nil))
	a.Close(ctx)
	var body struct {
		Sparkle      string `json:"sparkle"`
		Minisign     string `json:"minisign"`
		SeparateKeys bool   `json:"separate_keys"`
		Previous     []struct {
			Sparkle   string `json:"sparkle"`
			Minisign  string `json:"minisign"`
			RetiredAt string `json:"retired_at"`
		} `json:"previous"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("/keys: %d %s", rec.Code, rec.Body.String())
	}
	if body.Sparkle != next.Sparkle || body.Minisign != next.Minisign || !body.SeparateKeys ||
		len(body.Previous) != 1 || body.Previous[0].Sparkle != orig.Sparkle || body.Previous[0].RetiredAt == "" {
		t.Fatalf("/keys: %s", rec.Body.String())
	}

	// keys seal: refused without a master key, then seals once.
	if err := keysSeal([]string{"--data-dir", dir}, &out); err == nil {
		t.Fatal("keys seal without a master key succeeded")
	}
	mk, _ := signing.NewMasterKey()
	t.Setenv("PORTAL_SIGNING_MASTER_KEY", mk)
	if got := run(seal); !strings.Contains(got, "product=app") || !strings.Contains(got, "1 product key(s) sealed") {
		t.Fatalf("keys seal:\n%s", got)
	}
	if got := run(seal); !strings.Contains(got, "0 product key(s) sealed") {
		t.Fatalf("keys seal again:\n%s", got)
	}
	if d := describe(); d.Current != next {
		t.Fatal("sealing changed the public keys")
	}
}

func TestKeysRotateOpenPGP(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("PORTAL_SIGNING_MASTER_KEY", "")
	cfg, err := configs.Load(configs.LoadOptions{Env: os.Environ(), Flags: map[string]string{"data_dir": dir}})
	if err != nil {
		t.Fatal(err)
	}
	describe := func() signing.Keys {
		t.Helper()
		return describeKeys(t, cfg)
	}
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := a.Keys.New("app")
	if err != nil {
		t.Fatal(err)
	}
	cli := audit.WithActor(ctx, audit.Actor{Kind: audit.KindCLI})
	if _, err := a.Catalog.CreateProduct(cli, releases.Product{Slug: "app", Name: "App", Distribution: releases.Open, SigningKey: stored}); err != nil {
		t.Fatal(err)
	}
	a.Close(ctx)
	before := describe()

	var out bytes.Buffer
	if err := keysRotate([]string{"--data-dir", dir, "--openpgp", "--product", "app", "--activate"}, &out); err == nil || !strings.Contains(err.Error(), "no staged OpenPGP key") {
		t.Fatalf("--activate with nothing staged: %v", err)
	}
	if err := keysRotate([]string{"--data-dir", dir, "--openpgp", "--product", "app"}, &out); err != nil {
		t.Fatal(err)
	}
	d := describe()
	if d.OpenPGPNext == nil || d.OpenPGP.Fingerprint != before.OpenPGP.Fingerprint || !strings.Contains(out.String(), d.OpenPGPNext.Fingerprint) ||
		!strings.Contains(out.String(), "BEGIN PGP PUBLIC KEY BLOCK") || d.Current != before.Current {
		t.Fatalf("after staging: %+v\n%s", d, out.String())
	}
	next := d.OpenPGPNext.Fingerprint
	out.Reset()
	if err := keysRotate([]string{"--data-dir", dir, "--openpgp", "--product", "app", "--activate"}, &out); err != nil {
		t.Fatal(err)
	}
	d = describe()
	if d.OpenPGPNext != nil || d.OpenPGP.Fingerprint != next || len(d.OpenPGPPrevious) != 1 || d.OpenPGPPrevious[0] != before.OpenPGP.Fingerprint || d.Current != before.Current {
		t.Fatalf("after activating: %+v", d)
	}
}

// describeKeys opens the store cfg names, reads product app's signing keys
// and closes the store again, so that the command under test can open it.
func describeKeys(t *testing.T, cfg *configs.Config) signing.Keys {
	t.Helper()
	ctx := context.Background()
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	d, err := a.Keys.Describe(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	return d
}
