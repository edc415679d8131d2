package server_test

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/portaldist/portal/app"
)

// benchAddPackage uploads and completes the package file at path as an
// artifact of the draft release ver (linux/arch), through the services,
// for benchServer's catalog.
func benchAddPackage(b *testing.B, a *app.App, ver, arch, path string) {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	benchUpload(b, cliCtx, a, ver, filepath.Base(path), arch, data)
}

// benchRPMPrimary returns the path of the primary document repomd.xml
// names (its file name carries its checksum).
func benchRPMPrimary(b *testing.B, h http.Handler, key string) string {
	b.Helper()
	const base = "/rpm/app/stable/x86_64/"
	req := httptest.NewRequest("GET", base+"repodata/repomd.xml", nil)
	req.SetBasicAuth("license", key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var md repomdDoc
	if err := xml.Unmarshal(w.Body.Bytes(), &md); err != nil {
		b.Fatalf("repomd.xml: %d %v", w.Code, err)
	}
	for _, d := range md.Data {
		if d.Type == "primary" {
			return base + d.Location.Href
		}
	}
	b.Fatalf("repomd.xml names no primary: %s", w.Body)
	return ""
}
