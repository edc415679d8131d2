package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/portaldist/portal/downloads"
)

// The grant's hand-written JSON is byte for byte what c.PureJSON wrote
// (encoding/json without HTML escaping, and a newline), for plain values
// and for every kind of string that needs escaping.
func TestGrantJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 22, 40, 1, 0, time.UTC)
	for _, g := range []downloads.Grant{
		{URL: "http://127.0.0.1:8080/blobs/p/app/3d28?exp=1796250227&fn=app-1.9.99-linux-amd64.AppImage&kid=kRcF4P4nV&sig=bL0-Mm", ExpiresAt: at,
			Filename: "app-1.9.99-linux-amd64.AppImage", Version: "1.9.99", Size: 268435456, SHA256: "1447c0ad25629a502460b4283a401341bbe9b294fe9b29196f6b9059e63e59c5"},
		{URL: "https://s3.example/b/k?X-Amz-Signature=a&b=<c>", ExpiresAt: at.Add(123456789 * time.Nanosecond).In(time.FixedZone("", -5*3600)),
			Filename: `we"ird\name ünïcödé .zip`, Version: "2.0.0-beta.1+build.7", Size: 0, SHA256: ""},
		{URL: "a\x00b\x1f\x7f", ExpiresAt: at, Filename: "line\u2028sep\u2029", Version: "\xff\xfe bad utf-8", Size: -1, SHA256: "<&>"},
		{},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(g); err != nil {
			t.Fatal(err)
		}
		if got := appendGrantJSON(nil, g); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("grant JSON\n got %s\nwant %s", got, want.Bytes())
		}
	}
}
