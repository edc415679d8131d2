package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
)

// cliCtx is the context of the tests' direct calls to the services, which
// audit every change: they act as an offline command would.
var cliCtx = audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})

// fixture is a whole portal (app.Open on a temporary data directory)
// serving on a real loopback listener, for the pages' tests and the
// browser tests.
type fixture struct {
	t   testing.TB
	App *app.App
	URL string
	// Client follows no redirect and keeps no cookie: a test passes the
	// cookies it means to send.
	Client *http.Client
}

// newFixture opens and serves a portal; flags are extra configuration
// keys. It is closed when the test ends.
func newFixture(t testing.TB, flags map[string]string) *fixture {
	t.Helper()
	return newFixtureWith(t, flags, app.Options{})
}

// newFixtureWith is newFixture with app options (a clock, a logger).
func newFixtureWith(t testing.TB, flags map[string]string, opts app.Options) *fixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	if flags["tls.cert_file"] != "" {
		u = "https://" + ln.Addr().String()
	}
	all := map[string]string{"data_dir": t.TempDir(), "public_url": u, "log.access": "false", "log.level": "warn",
		"admin.socket": ""}
	for k, v := range flags {
		all[k] = v
	}
	cfg, err := configs.Load(configs.LoadOptions{Flags: all})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(cliCtx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { a.Serve(context.Background(), ln); close(done) }()
	t.Cleanup(func() {
		a.Close(context.Background())
		<-done
	})
	return &fixture{t: t, App: a, URL: u, Client: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// file is one build to publish.
type file struct {
	Name, Platform, Arch string
	Data                 []byte
}

// product creates a licensed product with a signing key.
func (f *fixture) product(slug, name string) {
	f.t.Helper()
	key, err := f.App.Keys.New(slug)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.App.Catalog.CreateProduct(cliCtx, releases.Product{Slug: slug, Name: name, Distribution: releases.Licensed, SigningKey: key}); err != nil {
		f.t.Fatal(err)
	}
}

// upload declares fl on the draft product version, uploads it over HTTP
// (to the portal's /blobs/ link) and completes it.
func (f *fixture) upload(product, version string, fl file) {
	f.t.Helper()
	sum := sha256.Sum256(fl.Data)
	art, up, err := f.App.Publishing.AddArtifact(cliCtx, product, version, releases.NewArtifact{
		Filename: fl.Name, Platform: fl.Platform, Arch: fl.Arch, Size: int64(len(fl.Data)), SHA256: hex.EncodeToString(sum[:]),
	}, "")
	if err != nil {
		f.t.Fatal(err)
	}
	req, _ := http.NewRequest(up.Method, up.URL, bytes.NewReader(fl.Data))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	res, err := f.Client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		f.t.Fatalf("upload %s: %s", fl.Name, res.Status)
	}
	if _, err := f.App.Publishing.Complete(cliCtx, product, version, art.Filename); err != nil {
		f.t.Fatal(err)
	}
}

// publish creates, uploads (over HTTP, to the portal's /blobs/ links),
// completes and publishes a release with files.
func (f *fixture) publish(product, version, channel, notes string, files ...file) {
	f.t.Helper()
	if _, err := f.App.Catalog.CreateRelease(cliCtx, product, releases.NewRelease{Version: version, Channel: channel, Notes: notes}); err != nil {
		f.t.Fatal(err)
	}
	for _, fl := range files {
		f.upload(product, version, fl)
	}
	if _, err := f.App.Catalog.Publish(cliCtx, product, version); err != nil {
		f.t.Fatal(err)
	}
	if err := f.App.Index.Refresh(cliCtx, product); err != nil {
		f.t.Fatal(err)
	}
}

// license creates a license; edit adjusts it before creation.
func (f *fixture) license(customer string, products []string, edit func(*licenses.License)) (licenses.License, string) {
	f.t.Helper()
	l := licenses.License{Customer: customer, Products: products, OnExpiry: licenses.OnExpiryRevoke}
	if edit != nil {
		edit(&l)
	}
	l, key, err := f.App.Licenses.Create(cliCtx, l)
	if err != nil {
		f.t.Fatal(err)
	}
	return l, key
}

// page is an HTTP answer read whole.
type page struct {
	Status int
	Header http.Header
	Body   string
	Cookie map[string]*http.Cookie
}

// do sends a request with cookies and an optional form.
func (f *fixture) do(method, path string, cookies []*http.Cookie, form url.Values) page {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	res, err := f.Client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	p := page{Status: res.StatusCode, Header: res.Header, Body: string(b), Cookie: map[string]*http.Cookie{}}
	for _, c := range res.Cookies() {
		p.Cookie[c.Name] = c
	}
	return p
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf returns the first CSRF token in a page.
func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in the page:\n%s", body)
	}
	return html.UnescapeString(m[1])
}

// browser is an HTTP client's cookie jar by hand: what a browser would
// hold after the answers it got.
type browser struct {
	f       *fixture
	cookies map[string]*http.Cookie
}

func (f *fixture) browser() *browser { return &browser{f: f, cookies: map[string]*http.Cookie{}} }

func (b *browser) jar() []*http.Cookie {
	var cs []*http.Cookie
	for _, c := range b.cookies {
		cs = append(cs, c)
	}
	return cs
}

func (b *browser) do(method, path string, form url.Values) page {
	b.f.t.Helper()
	p := b.f.do(method, path, b.jar(), form)
	for name, c := range p.Cookie {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, name)
		} else {
			b.cookies[name] = &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	return p
}

// signIn signs in with key as a browser would: GET /, then POST the form
// with its CSRF token.
func (b *browser) signIn(key string) page {
	b.f.t.Helper()
	p := b.do("GET", "/", nil)
	return b.do("POST", "/signin", url.Values{"csrf": {csrfOf(b.f.t, p.Body)}, "key": {key}})
}
