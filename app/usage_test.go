package app_test

import (
	"net/http/httptest"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/tokens"
)

// A token's last use, noted in memory when it authenticates, is in the
// store after Close (its final flush), for the next process to list.
func TestCloseFlushesTokenUsage(t *testing.T) {
	ctx := cliCtx
	cfg := config(t, t.TempDir(), "http://127.0.0.1:1")
	a, err := app.Open(ctx, cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, raw, err := a.Tokens.Create(ctx, "ci", tokens.Admin, nil)
	if err != nil {
		a.Close(ctx)
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/products", nil)
	req.Header.Set("Authorization", "Bearer "+raw)
	w := httptest.NewRecorder()
	a.Server.ServeHTTP(w, req)
	if w.Code != 200 {
		a.Close(ctx)
		t.Fatalf("GET /v1/products: %d %s", w.Code, w.Body)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	ts, err := b.Tokens.List(ctx)
	if err != nil || len(ts) != 1 || ts[0].ID != tok.ID || ts[0].LastUsedAt == nil {
		t.Fatalf("tokens after reopening: %+v, %v; want %s with its last use", ts, err, tok.ID)
	}
}
