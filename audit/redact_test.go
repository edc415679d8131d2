package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/tokens"
)

// storedRecords returns the raw bytes of every stored audit record.
func storedRecords(t *testing.T, db store.DB) [][]byte {
	t.Helper()
	var out [][]byte
	err := db.View(context.Background(), func(tx store.Tx) error {
		return tx.Scan([]byte(audit.RecordPrefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			out = append(out, bytes.Clone(v))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRedactsRealLicensesAndTokens(t *testing.T) {
	db, _ := newDB(t)
	clock(t)
	ctx := cliCtx()
	fixed := func() time.Time { return t0 }
	if _, err := releases.New(db, fixed).CreateProduct(ctx, releases.Product{Slug: "app", Name: "App"}); err != nil {
		t.Fatal(err)
	}
	lics := licenses.New(db, releases.New(db, fixed), fixed)
	lic, key, err := lics.Create(ctx, licenses.License{Customer: "Bob Example", Product: "app", OnExpiry: licenses.OnExpiryRevoke})
	if err != nil {
		t.Fatal(err)
	}
	tok, raw, err := tokens.New(db, fixed).Create(ctx, "deploy bot", tokens.Publisher, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if lic.KeyDigest == "" || tok.Digest == "" || !secret.WellFormed(key, licenses.KeyPrefix) || !secret.WellFormed(raw, tokens.Prefix) {
		t.Fatalf("the services did not return what this test needs: %+v %+v", lic, tok)
	}
	newKey := secret.New(licenses.KeyPrefix)
	reissued := lic
	reissued.KeyDigest = secret.Digest(newKey)
	reissued.KeyHint = secret.Hint(newKey)

	type signedArtifact struct {
		Filename   string            `json:"filename"`
		SHA256     string            `json:"sha256"`
		Signatures map[string]string `json:"signatures"`
		URL        string            `json:"url"`
	}
	secrets := []string{key, raw, newKey, lic.KeyDigest, tok.Digest, reissued.KeyDigest,
		"c2lnbmF0dXJl", "s3cr3t-pass", "PRIVATEBYTES", "hmacsecretvalue", "bearer-secret-abc", "X-Amz-Signature=abc123"}
	writes := []struct {
		action, target string
		before, after  any
	}{
		{"license.create", "license/" + lic.ID, nil, lic},
		{"license.reissue", "license/" + lic.ID, lic, reissued},
		{"token.create", "token/" + tok.ID, nil, tok},
		{"token.delete", "token/" + tok.ID, tok, nil},
		// Secrets pasted into free text, and secret-named members in any
		// spelling, at any depth.
		{"release.edit", "release/app/1.0.0", map[string]any{"notes": "old"}, map[string]any{
			"notes":    "customer sent their key " + key + " by mail",
			"metadata": map[string]any{"owner_token": raw, "SigningKey": "PRIVATEBYTES", "apiToken": "x", "ok": "kept", key: "as a map key"},
			"list":     []any{"fine", "Bearer bearer-secret-abc", "License terms changed", "Basic auth is supported", map[string]any{"password": "s3cr3t-pass"}},
			"pem":      "-----BEGIN PRIVATE KEY-----\nPRIVATEBYTES\n-----END PRIVATE KEY-----",
			"webhook":  map[string]any{"url": "https://hooks.example.com/x", "secret": "hmacsecretvalue"},
		}},
		{"artifact.upload", "artifact/app/1.0.0/app.zip", nil, signedArtifact{
			Filename: "app.zip", SHA256: strings.Repeat("ab", 32),
			Signatures: map[string]string{"ed25519": "c2lnbmF0dXJl"},
			URL:        "https://s3.example.com/b/o?X-Amz-Credential=AKIA&X-Amz-Signature=abc123",
		}},
	}
	// The services audit their own changes: those records come first (the
	// clock is fixed, so they are ordered by sequence) and must hold no
	// secret either.
	own := storedRecords(t, db)
	for _, b := range own {
		for _, s := range secrets {
			if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(s))) {
				t.Errorf("a service's record holds %q: %s", s, b)
			}
		}
	}
	for _, w := range writes {
		if err := db.Update(ctx, func(tx store.Tx) error {
			return audit.Write(ctx, tx, w.action, w.target, w.before, w.after)
		}); err != nil {
			t.Fatalf("%s: %v", w.action, err)
		}
	}
	stored := storedRecords(t, db)[len(own):]
	if len(stored) != len(writes) {
		t.Fatalf("%d records, want %d", len(stored), len(writes))
	}
	for i, b := range stored {
		for _, s := range secrets {
			if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(s))) {
				t.Errorf("%s: record holds %q: %s", writes[i].action, s, b)
			}
		}
		for _, name := range []string{`"key_digest"`, `"digest"`, `"signatures"`, `"password"`, `"secret"`, `"signing_key"`, `"SigningKey"`, `"apiToken"`, `"owner_token"`} {
			if bytes.Contains(b, []byte(name)) {
				t.Errorf("%s: record names %s: %s", writes[i].action, name, b)
			}
		}
	}

	// What is not secret stays, so the record is still useful.
	recs := listAll(t, audit.New(db), audit.Filter{})
	byAction := map[string]audit.Record{}
	for _, r := range recs {
		byAction[r.Action] = r
	}
	var created licenses.License
	if err := json.Unmarshal(byAction["license.create"].After, &created); err != nil {
		t.Fatal(err)
	}
	if created.ID != lic.ID || created.Customer != "Bob Example" || created.KeyHint != lic.KeyHint || created.Status != licenses.Active {
		t.Errorf("license.create after = %s", byAction["license.create"].After)
	}
	// A reissue changes the key's hint and digest; only the hint is kept.
	if r := byAction["license.reissue"]; string(r.Before) != `{"key_hint":"`+lic.KeyHint+`"}` || string(r.After) != `{"key_hint":"`+reissued.KeyHint+`"}` {
		t.Errorf("license.reissue before %s after %s", r.Before, r.After)
	}
	var gotTok tokens.Token
	if err := json.Unmarshal(byAction["token.delete"].Before, &gotTok); err != nil {
		t.Fatal(err)
	}
	if gotTok.ID != tok.ID || gotTok.Name != "deploy bot" || gotTok.Hint != tok.Hint || gotTok.Digest != "" {
		t.Errorf("token.delete before = %s", byAction["token.delete"].Before)
	}
	if r := byAction["token.delete"]; r.After != nil {
		t.Errorf("token.delete after = %s, want none", r.After)
	}
	edit := string(byAction["release.edit"].After)
	for _, want := range []string{`"notes":"[redacted]"`, `"ok":"kept"`, `"fine"`, `"License terms changed"`, `"Basic auth is supported"`, `"[redacted]"`, `"url":"https://hooks.example.com/x"`} {
		if !strings.Contains(edit, want) {
			t.Errorf("release.edit after lacks %s: %s", want, edit)
		}
	}
	art := string(byAction["artifact.upload"].After)
	if !strings.Contains(art, `"url":"[redacted]"`) || !strings.Contains(art, `"sha256":"`+strings.Repeat("ab", 32)+`"`) {
		t.Errorf("artifact.upload after = %s", art)
	}
}

func TestRequestFieldsAreBoundedAndScrubbed(t *testing.T) {
	key := secret.New(licenses.KeyPrefix)
	cases := []struct {
		name, in, want string
	}{
		{"address", "[2001:db8::1]:443", "[2001:db8::1]:443"},
		{"control characters", "a\nb\x00c\x7f", "a?b?c?"},
		{"invalid UTF-8", "a\xffb", "a?b"},
		{"too long", strings.Repeat("é", 100), strings.Repeat("é", audit.MaxRequestField/2)},
		{"a secret", "id-" + key, "[redacted]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client, id := audit.RequestFrom(audit.WithRequest(context.Background(), c.in, c.in))
			if client != c.want || id != c.want {
				t.Errorf("got %q %q, want %q", client, id, c.want)
			}
		})
	}
	if c, id := audit.RequestFrom(context.Background()); c != "" || id != "" {
		t.Errorf("no request: %q %q", c, id)
	}
}

func TestChangedFieldsOnly(t *testing.T) {
	db, _ := newDB(t)
	clock(t)
	ctx := cliCtx()
	cases := []struct {
		name                  string
		before, after         any
		wantBefore, wantAfter string
	}{
		{"creation", nil, map[string]any{"a": 1}, "", `{"a":1}`},
		{"deletion", map[string]any{"a": 1}, nil, `{"a":1}`, ""},
		{"edit", map[string]any{"a": 1, "b": []int{1}, "c": "x"}, map[string]any{"a": 1, "b": []int{1, 2}, "d": true}, `{"b":[1],"c":"x"}`, `{"b":[1,2],"d":true}`},
		{"no change", map[string]any{"a": 1}, map[string]any{"a": 1}, `{}`, `{}`},
		{"not objects", "old", "new", `"old"`, `"new"`},
		{"big numbers keep their digits", nil, map[string]any{"n": json.Number("12345678901234567890")}, "", `{"n":12345678901234567890}`},
		{"too large", nil, map[string]string{"notes": strings.Repeat("n", audit.MaxSideBytes)}, "", `{"truncated":true,"bytes":32780}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := db.Update(ctx, func(tx store.Tx) error {
				return audit.Write(ctx, tx, "thing.edit", "thing/"+c.name, c.before, c.after)
			})
			if err != nil {
				t.Fatal(err)
			}
			recs, _, err := audit.New(db).List(context.Background(), audit.Filter{TargetPrefix: "thing/" + c.name, Limit: 1})
			if err != nil || len(recs) != 1 {
				t.Fatalf("%v %v", recs, err)
			}
			if string(recs[0].Before) != c.wantBefore || string(recs[0].After) != c.wantAfter {
				t.Errorf("before %s after %s, want %s %s", recs[0].Before, recs[0].After, c.wantBefore, c.wantAfter)
			}
		})
	}
}
