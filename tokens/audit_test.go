package tokens_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// Creating and deleting a token writes one audit record each, which holds
// neither the token nor its digest; without an actor nothing is stored.
func TestTokensAudited(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{RunUpdatesTwice: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := tokens.New(db, nil)
	if _, _, err := svc.Create(context.Background(), "x", tokens.Admin, nil); !errors.Is(err, audit.ErrNoActor) {
		t.Fatalf("Create without an actor: %v", err)
	}
	if ts, _ := svc.List(bg); len(ts) != 0 {
		t.Fatalf("a token was stored without its audit record: %+v", ts)
	}
	tok, raw, err := svc.Create(bg, "ci", tokens.Publisher, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Delete(bg, tok.ID); err != nil {
		t.Fatal(err)
	}
	recs, _, err := audit.New(db).List(bg, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Action != "token.delete" || recs[1].Action != "token.create" ||
		recs[0].Target != "token/"+tok.ID || recs[1].Actor.Kind != audit.KindCLI {
		t.Fatalf("records %+v", recs)
	}
	for _, r := range recs {
		all := string(r.Before) + string(r.After)
		if strings.Contains(all, raw) || strings.Contains(all, secret.Digest(raw)) || strings.Contains(all, "digest") || strings.Contains(all, tok.Hint) {
			t.Errorf("%s holds the token or its digest: %s", r.Action, all)
		}
		if !strings.Contains(all, `"name":"ci"`) {
			t.Errorf("%s does not describe the token: %s", r.Action, all)
		}
	}
}
