package objectstest_test

import (
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
)

// The contract's helpers (package objects) are tested here, beside the
// conformance suite.

func TestCheckKey(t *testing.T) {
	for _, c := range []struct {
		key string
		ok  bool
	}{
		{"p/prod/01J9/app-1.0.zip", true},
		{"p/prod/x/Ünïcode name (1).zip", true},
		{"a", true},
		{strings.Repeat("k", objects.MaxKeyLen), true},
		{strings.Repeat("k", objects.MaxKeyLen+1), false},
		{"", false},
		{"/abs", false},
		{"trailing/", false},
		{"a//b", false},
		{"..", false},
		{"a/../b", false},
		{"./a", false},
		{"a/.hidden", false},
		{".tmp/x", false},
		{"nul\x00", false},
		{"new\nline", false},
		{"back\\slash", false},
		{"bad\xffutf8", false},
		{"c1\u0085control", false},
	} {
		err := objects.CheckKey(c.key)
		if (err == nil) != c.ok {
			t.Errorf("CheckKey(%.50q) = %v, want ok=%v", c.key, err, c.ok)
		}
		if err != nil && !portal.IsCode(err, portal.EInvalid) {
			t.Errorf("CheckKey(%.50q) code %s", c.key, portal.ErrorCode(err))
		}
	}
}

func TestContentDisposition(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"app.zip", `attachment; filename="app.zip"`},
		{`a "b" \c.zip`, `attachment; filename="a \"b\" \\c.zip"`},
		{"né 版.zip", `attachment; filename="n_ _.zip"; filename*=UTF-8''n%C3%A9%20%E7%89%88.zip`},
		{"x;y=z%.zip", `attachment; filename="x;y=z%.zip"`},
	} {
		got := objects.ContentDisposition(c.name)
		if got != c.want {
			t.Errorf("ContentDisposition(%q) = %s, want %s", c.name, got, c.want)
		}
		typ, params, err := mime.ParseMediaType(got)
		if err != nil || typ != "attachment" || params["filename"] != c.name {
			t.Errorf("%s parses to %q %q %v", got, typ, params["filename"], err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a\\b", "tab\t", strings.Repeat("n", 256)} {
		if err := objects.CheckFilename(bad); err == nil {
			t.Errorf("CheckFilename(%.30q) accepted", bad)
		}
	}
	if n, err := objects.DownloadName("p/x/file.bin", ""); err != nil || n != "file.bin" {
		t.Errorf("DownloadName default: %q %v", n, err)
	}
}

func TestCapTTL(t *testing.T) {
	for _, c := range []struct {
		ttl, max, want time.Duration
		ok             bool
	}{
		{time.Minute, time.Hour, time.Minute, true},
		{2 * time.Hour, time.Hour, time.Hour, true},
		{30 * 24 * time.Hour, 30 * 24 * time.Hour, objects.MaxLinkTTL, true},
		{0, time.Hour, 0, false},
		{500 * time.Millisecond, time.Hour, 0, false},
		{time.Minute, 0, 0, false},
	} {
		got, err := objects.CapTTL(c.ttl, c.max)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("CapTTL(%v, %v) = %v, %v", c.ttl, c.max, got, err)
		}
	}
}
