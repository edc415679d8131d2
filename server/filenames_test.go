package server_test

import (
	"mime"
	"net/url"
	"strings"
	"testing"
)

// TestMinisigContentDisposition: the .minisig of an artifact with a
// non-ASCII name is sent as an attachment whose header is plain ASCII (a
// quoted fallback) with the exact name in RFC 5987 filename*=.
func TestMinisigContentDisposition(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	admin := bearer(e.admin)
	e.must(201, e.do("POST", "/v1/products/acme/releases", admin, map[string]any{"version": "1.0.0"}))
	for _, name := range []string{`Übersetzer 2.0 – "Setup".zip`, "应用程序 1.0.tar.gz", "plain-1.0.zip"} {
		e.upload(admin, "acme", "1.0.0", name, "any", "any", []byte(strings.Repeat(name, 50)))
		r := e.must(200, e.do("GET", "/v1/products/acme/releases/1.0.0/artifacts/"+url.PathEscape(name+".minisig"), admin, nil))
		cd := r.header.Get("Content-Disposition")
		for i := 0; i < len(cd); i++ {
			if cd[i] < 0x20 || cd[i] >= 0x7f {
				t.Fatalf("%s: Content-Disposition holds byte %#x: %q", name, cd[i], cd)
			}
		}
		typ, params, err := mime.ParseMediaType(cd)
		if err != nil || typ != "attachment" || params["filename"] != name+".minisig" {
			t.Errorf("%s: Content-Disposition %q parses to %q %q (%v)", name, cd, typ, params["filename"], err)
		}
		if !strings.HasPrefix(string(r.body), "untrusted comment:") {
			t.Errorf("%s: .minisig body %q", name, r.body)
		}
	}
}
