package webhooks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal/store/bolt"
)

func TestCheckIP(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "fc00::1", "fd12::1",
		"169.254.169.254", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "100.64.0.1", "100.127.255.254",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::a9fe:a9fe",
		"2002:7f00:1::1", "255.255.255.255", "198.18.0.1",
	}
	for _, s := range refused {
		if err := CheckIP(netip.MustParseAddr(s)); !errors.Is(err, ErrPrivateTarget) {
			t.Errorf("CheckIP(%s) = %v, want refused", s, err)
		}
	}
	for _, s := range []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1", "::ffff:93.184.216.34"} {
		if err := CheckIP(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckIP(%s) = %v, want allowed", s, err)
		}
	}
}

// staticResolver answers every name with its addresses.
type staticResolver []netip.Addr

func (r staticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	public := staticResolver{netip.MustParseAddr("93.184.216.34")}
	rebinding := staticResolver{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.1.2.3")}
	for _, c := range []struct {
		url     string
		r       Resolver
		private bool
		ok      bool
	}{
		{"https://hooks.example.com/portal", public, false, true},
		{"https://hooks.example.com/portal", rebinding, false, false},
		{"http://127.0.0.1:8080/x", public, false, false},
		{"http://127.0.0.1:8080/x", public, true, true},
		{"http://LOCALHOST./x", public, false, false},
		{"http://a.localhost/x", public, false, false},
		{"http://[::1]/x", public, false, false},
		{"http://[fe80::1%25eth0]/x", public, false, false},
		{"gopher://hooks.example.com/", public, true, false},
		{"https:///nohost", public, true, false},
		{"/relative", public, true, false},
		{"https://hooks.example.com/#frag", public, false, false},
		{"https://user@hooks.example.com/", public, false, false},
	} {
		_, err := CheckURL(ctx, c.url, c.private, c.r)
		if (err == nil) != c.ok {
			t.Errorf("CheckURL(%q, private=%v) = %v, want ok=%v", c.url, c.private, err, c.ok)
		}
	}
}

// The sender's dialer refuses a loopback address however the URL named it:
// the receiver is never reached.
func TestDialGuard(t *testing.T) {
	if err := DialControl("tcp", "127.0.0.1:80", nil); !errors.Is(err, ErrPrivateTarget) {
		t.Fatalf("DialControl(127.0.0.1) = %v", err)
	}
	if err := DialControl("tcp6", "[::ffff:169.254.169.254]:80", nil); !errors.Is(err, ErrPrivateTarget) {
		t.Fatalf("DialControl(mapped metadata) = %v", err)
	}
	if err := DialControl("tcp", "93.184.216.34:443", nil); err != nil {
		t.Fatalf("DialControl(public) = %v", err)
	}
	var hits atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer rcv.Close()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db, Options{Timeout: 5 * time.Second})
	status, msg := s.post(context.Background(), s.client(), rcv.URL, "whsec_x", Event{ID: "evt_1", Type: LinkCreated})
	if status != 0 || msg == "" || hits.Load() != 0 {
		t.Fatalf("post to loopback: status %d, error %q, %d hits", status, msg, hits.Load())
	}
	allowed := New(db, Options{AllowPrivate: true, Timeout: 5 * time.Second})
	if status, msg := allowed.post(context.Background(), allowed.client(), rcv.URL, "whsec_x", Event{ID: "evt_1", Type: LinkCreated}); status != 200 || hits.Load() != 1 {
		t.Fatalf("post with private targets allowed: %d %q", status, msg)
	}
}

func TestSignAndSchedule(t *testing.T) {
	at := time.Unix(1700000000, 0)
	got := Sign("whsec_test", at, []byte(`{"id":"evt_1"}`))
	// HMAC-SHA256("whsec_test", `1700000000.{"id":"evt_1"}`), computed with
	// openssl dgst -sha256 -hmac.
	if want := "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	s := New(nil, Options{RetryBase: time.Second, RetryMax: time.Hour})
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 12: 2048 * time.Second, 13: time.Hour, 40: time.Hour} {
		if d := s.delay(n); d != want {
			t.Errorf("delay(%d) = %s, want %s", n, d, want)
		}
	}
}
