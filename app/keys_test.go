package app_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// TestSealKeysAtStart: a store whose keys were written without a master key
// (shared keys of the first format and split ones) is sealed when the portal
// starts with one: a log line per product, no plaintext left, the same
// public keys; a plaintext key planted afterwards is refused.
func TestSealKeysAtStart(t *testing.T) {
	ctx := cliCtx
	dir := t.TempDir()
	plain := config(t, dir, "http://127.0.0.1:1")
	a, err := app.OpenStore(ctx, plain, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	noMaster, _ := signing.NewSealer(nil)
	products := []string{"legacy", "split"}
	for _, slug := range products {
		var stored []byte
		if slug == "legacy" {
			k, err := signing.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			stored, err = noMaster.For(slug).Seal(k)
			if err != nil {
				t.Fatal(err)
			}
		} else if stored, err = a.Keys.New(slug); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Catalog.CreateProduct(ctx, releases.Product{Slug: slug, Name: slug, Distribution: releases.Open, SigningKey: stored}); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]signing.Keys{}
	for _, slug := range products {
		if before[slug], err = a.Keys.Describe(ctx, slug); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	mk, err := signing.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": dir, "public_url": "http://127.0.0.1:1", "log.access": "false", "signing.master_key": mk,
	}})
	if err != nil {
		t.Fatal(err)
	}
	var logs keysLog
	b, err := app.Open(ctx, sealed, app.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	for _, slug := range products {
		if !strings.Contains(logs.String(), `msg="signing key sealed with the master key" product=`+slug+"\n") {
			t.Errorf("no log line for sealing %s:\n%s", slug, logs.String())
		}
		p, err := b.Catalog.Product(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := noMaster.For(slug).Current(p.SigningKey); !errors.Is(err, signing.ErrMasterKeyRequired) {
			t.Errorf("%s: stored key opens without the master key (%v): still plaintext", slug, err)
		}
		after, err := b.Keys.Describe(ctx, slug)
		if err != nil || after.Current != before[slug].Current {
			t.Errorf("%s: public keys changed by sealing: %v", slug, err)
		}
		if _, err := b.Keys.SigningKeys(ctx, slug); err != nil {
			t.Errorf("%s: sealed key: %v", slug, err)
		}
	}

	// A plaintext key written while a master key is set is refused.
	k, _ := signing.GenerateKey()
	planted, _ := noMaster.For("legacy").Seal(k)
	if err := b.Catalog.SetSigningKey(ctx, "legacy", planted); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Keys.SigningKeys(ctx, "legacy"); !errors.Is(err, signing.ErrPlaintextKey) {
		t.Fatalf("a plaintext key under a master key: %v, want ErrPlaintextKey", err)
	}
}

// keysLog is a bytes.Buffer safe for the App's concurrent logging.
type keysLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *keysLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *keysLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
