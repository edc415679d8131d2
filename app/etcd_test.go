package app_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/etcdtest"
	"github.com/portaldist/portal/internal/testcert"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
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

// TestOpenDBEtcdTLSAndAuth: store.etcd's TLS files and credentials reach a
// cluster that serves clients over TLS, asks for client certificates and
// has authentication on; leaving out either is refused at open, clearly.
func TestOpenDBEtcdTLSAndAuth(t *testing.T) {
	ctx := cliCtx
	dir := t.TempDir()
	ca := testcert.New(t)
	files := &etcdtest.TLSFiles{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server.key"),
		ClientCertAuth: true, ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client.key"),
	}
	ca.WriteCA(t, files.CAFile)
	ca.Issue(t, files.CertFile, files.KeyFile, 2)
	ca.IssueClient(t, "portal", files.ClientCert, files.ClientKey, 3)
	cluster := etcdtest.New(t, etcdtest.Options{Members: 1, TLS: files})
	if err := cluster.EnableAuth(ctx, "root-secret", "portal", "portal-secret", "tls/"); err != nil {
		t.Fatal(err)
	}
	load := func(flags map[string]string) *configs.Config {
		t.Helper()
		return loadFlags(t, map[string]string{
			"data_dir": t.TempDir(), "store.backend": "etcd", "objects.local.shared": "true",
			"store.etcd.endpoints": strings.Join(cluster.Endpoints(), ","), "store.etcd.prefix": "tls/",
			"store.etcd.dial_timeout": "10s",
			"store.etcd.username":     "portal", "store.etcd.password": "portal-secret",
			"store.etcd.tls.ca_file": files.CAFile, "store.etcd.tls.cert_file": files.ClientCert, "store.etcd.tls.key_file": files.ClientKey,
		}, flags)
	}
	db, err := app.OpenDB(ctx, load(nil), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.NextSequence("n"); err != nil {
			return err
		}
		if err := tx.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		return tx.Delete([]byte("gone"))
	}); err != nil {
		t.Fatal(err)
	}
	if st := db.(store.StatusReporter).Status(ctx); !st.Reachable || st.MembersReachable != 1 {
		t.Fatalf("status %+v", st)
	}

	for name, c := range map[string]struct {
		flags map[string]string
		want  string
	}{
		"wrong password": {map[string]string{"store.etcd.password": "guess"}, "authentication failed"},
		// A refused handshake shows as a timeout: keep it short.
		"no client certificate": {map[string]string{"store.etcd.tls.cert_file": "", "store.etcd.tls.key_file": "", "store.etcd.dial_timeout": "1s"}, "does not answer"},
		"untrusted server":      {map[string]string{"store.etcd.tls.ca_file": "", "store.etcd.dial_timeout": "1s"}, "does not answer"},
		"prefix not granted":    {map[string]string{"store.etcd.prefix": "other/"}, "permission denied"},
		"http endpoint":         {map[string]string{"store.etcd.endpoints": strings.ReplaceAll(strings.Join(cluster.Endpoints(), ","), "https://", "http://")}, "is not https:// while TLS is on"},
	} {
		t.Run(name, func(t *testing.T) {
			db, err := app.OpenDB(ctx, load(c.flags), false)
			if err == nil {
				db.Close()
				t.Fatal("OpenDB succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "portal-secret") {
				t.Fatalf("error %q quotes the password", err)
			}
		})
	}
}

// TestOpenRefusesUnsharedLocalObjects: replicas of an etcd store cannot
// serve objects from their own disks; OpenStore, for commands on the store
// alone, does not mind.
func TestOpenRefusesUnsharedLocalObjects(t *testing.T) {
	ctx := cliCtx
	cluster := etcdtest.New(t, etcdtest.Options{Members: 1})
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": t.TempDir(), "store.backend": "etcd",
		"store.etcd.endpoints": strings.Join(cluster.Endpoints(), ","),
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(ctx, cfg, app.Options{})
	if err == nil {
		a.Close(ctx)
		t.Fatal("Open with unshared local objects on etcd succeeded")
	}
	if want := "objects.backend: local objects cannot be shared by the replicas of store.backend etcd"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "objects.local.shared") {
		t.Fatalf("error %q", err)
	}
	b, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	b.Close(ctx)
}
