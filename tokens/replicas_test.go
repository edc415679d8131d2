package tokens_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// Two services on one store stand for two replicas: a token created on one
// authenticates on the other at once (Authenticate reads the store), the
// other's in-memory digest set learns of it through the store's watch, and
// a token deleted on one is refused by the other at once.
func TestTokensAcrossServices(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := tokens.New(db, nil), tokens.New(db, nil)
	tok, raw, err := a.Create(bg, "ci", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Authenticate(bg, raw); err != nil || got.ID != tok.ID {
		t.Fatalf("B authenticates A's new token: %v", err)
	}
	deadline := time.Now().Add(time.Second)
	for !b.MayExist(raw) {
		if time.Now().After(deadline) {
			t.Fatal("B's digest set did not learn of A's token within a second")
		}
		time.Sleep(time.Millisecond)
	}
	if err := a.Delete(bg, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(bg, raw); !errors.Is(err, tokens.ErrBadToken) {
		t.Fatalf("B after A deleted the token: %v, want ErrBadToken", err)
	}
	deadline = time.Now().Add(time.Second)
	for b.MayExist(raw) {
		if time.Now().After(deadline) {
			t.Fatal("B's digest set still has the deleted token after a second")
		}
		time.Sleep(time.Millisecond)
	}
}
