package tokens_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// TestByDigest: a token is found by its digest while it stands, and
// refused once deleted or expired, or for a digest of the wrong form.
func TestByDigest(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := t0
	svc := tokens.New(db, func() time.Time { return now })
	tok, _, err := svc.Create(bg, "ops", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	short, _, err := svc.CreateWith(bg, tokens.NewToken{Name: "short", Role: tokens.Admin, ExpiresAt: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := svc.ByDigest(bg, tok.Digest); err != nil || got.ID != tok.ID {
		t.Fatalf("ByDigest: %+v, %v", got, err)
	}
	for _, d := range []string{"", "00", strings.Repeat("0", 64), strings.Repeat("z", 64), tok.Digest[:63], tok.Digest + "0"} {
		if _, err := svc.ByDigest(bg, d); err != tokens.ErrBadToken {
			t.Errorf("ByDigest(%q): %v, want ErrBadToken", d, err)
		}
	}
	now = t0.Add(2 * time.Hour)
	if _, err := svc.ByDigest(bg, short.Digest); err != tokens.ErrExpired {
		t.Errorf("an expired token: %v, want ErrExpired", err)
	}
	if err := svc.Delete(bg, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ByDigest(bg, tok.Digest); err != tokens.ErrBadToken {
		t.Errorf("a deleted token: %v, want ErrBadToken", err)
	}
}
