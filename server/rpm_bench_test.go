package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/releases"
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
	sum := sha256.Sum256(data)
	art, up, err := a.Publishing.AddArtifact(cliCtx, "app", ver, releases.NewArtifact{
		Filename: filepath.Base(path), Platform: "linux", Arch: arch, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
	}, "")
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(up.Method, up.URL, bytes.NewReader(data))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	a.Blobs.ServeHTTP(w, req)
	if w.Code/100 != 2 {
		b.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	if _, err := a.Publishing.Complete(cliCtx, "app", ver, art.Filename); err != nil {
		b.Fatal(err)
	}
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
