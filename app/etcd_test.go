package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/etcdtest"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store/etcd"
	"github.com/portaldist/portal/tokens"
)

// TestOpenOnEtcd opens the App on an etcd store (store.backend etcd,
// endpoints given as one comma-separated value, as from the environment):
// what one App writes, a second one on the same cluster and prefix reads;
// one under another prefix does not; /readyz names the driver and reports
// the cluster and the watches.
func TestOpenOnEtcd(t *testing.T) {
	ctx := cliCtx
	cluster := etcdtest.New(t, etcdtest.Options{})
	load := func(prefix, url string) *configs.Config {
		t.Helper()
		cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
			"data_dir": t.TempDir(), "public_url": url, "log.access": "false",
			"downloads.ledger_flush_interval": "1h",
			"store.backend":                   "etcd",
			"store.etcd.endpoints":            strings.Join(cluster.Endpoints(), ","),
			"store.etcd.prefix":               prefix,
			"objects.local.shared":            "true",
			"objects.local.secret":            strings.Repeat("s", 32),
		}})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	ln, url := listen(t)
	a, err := app.Open(ctx, load("portal/", url), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if _, ok := a.DB.(*etcd.DB); !ok {
		t.Fatalf("store is a %T", a.DB)
	}
	go a.Serve(ctx, ln)
	if _, _, err := a.Tokens.Create(ctx, "root", tokens.Admin, nil); err != nil {
		t.Fatal(err)
	}
	sealed, err := a.Keys.New("app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Catalog.CreateProduct(ctx, releases.Product{Slug: "app", Distribution: releases.Open, SigningKey: sealed}); err != nil {
		t.Fatal(err)
	}

	b, err := app.OpenStore(ctx, load("portal/", "http://127.0.0.1:1"), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if any, err := b.Tokens.Any(ctx); err != nil || !any {
		t.Fatalf("second replica sees no token: %v, %v", any, err)
	}
	if _, err := b.Catalog.Product(ctx, "app"); err != nil {
		t.Fatalf("second replica: product: %v", err)
	}
	other, err := app.OpenStore(ctx, load("other/", "http://127.0.0.1:1"), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if any, err := other.Tokens.Any(ctx); err != nil || any {
		t.Fatalf("a portal under another prefix sees a token: %v, %v", any, err)
	}

	res, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Ready bool `json:"ready"`
		Store struct {
			Driver           string `json:"driver"`
			Reachable        bool   `json:"reachable"`
			Members          int    `json:"members"`
			MembersReachable int    `json:"members_reachable"`
			Revision         uint64 `json:"revision"`
			Watch            struct {
				Watches  int    `json:"watches"`
				Revision uint64 `json:"revision"`
			} `json:"watch"`
		} `json:"store"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	st := body.Store
	if res.StatusCode != 200 || !body.Ready || st.Driver != "etcd" || !st.Reachable || st.Members != 3 || st.MembersReachable != 3 || st.Revision == 0 {
		t.Fatalf("readyz %d %+v", res.StatusCode, body)
	}
	if st.Watch.Watches == 0 || st.Watch.Revision == 0 {
		t.Fatalf("readyz reports no watch: %+v", st)
	}
}
