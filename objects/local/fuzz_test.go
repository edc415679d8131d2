package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzStore opens a store under a fresh directory that also holds a file
// outside the root, and stores one object through a real signed PUT.
func fuzzStore(f *testing.F) (st *Store, dir string, object []byte) {
	dir = f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "outside.txt"), []byte(secretContent), 0o644); err != nil {
		f.Fatal(err)
	}
	keys, _ := NewKeyring(Key{ID: "k1", Secret: bytes.Repeat([]byte("s"), 32)}, Key{ID: "k2", Secret: bytes.Repeat([]byte("t"), 32)})
	st, err := Open(Options{Root: filepath.Join(dir, "objects"), BaseURL: "http://portal", Keys: keys})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	object = []byte("the object's bytes")
	sum := sha256.Sum256(object)
	sr, err := st.PresignPut(context.Background(), "p/a b/x.bin", int64(len(object)), hex.EncodeToString(sum[:]), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	rec := serve(st, "PUT", strings.TrimPrefix(sr.URL, "http://portal"), object)
	if rec.Code != http.StatusOK {
		f.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	return st, dir, object
}

func serve(st *Store, method, target string, body []byte) *httptest.ResponseRecorder {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil
	}
	req := &http.Request{Method: method, URL: u, RequestURI: target, Header: http.Header{}, Host: "portal",
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
	rec := httptest.NewRecorder()
	st.Handler().ServeHTTP(rec, req)
	return rec
}

// signedFields are what a /blobs/ signature covers: a request that differs
// from a minted link in none of them is that link.
func signedFields(method, target string) (string, bool) {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return "", false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", false
	}
	if method == "HEAD" {
		method = "GET"
	}
	parts := []string{method, u.Path}
	for _, name := range []string{qExpires, qKeyID, qSig, qSize, qSHA256, qFilename} {
		parts = append(parts, strconv.Quote(strings.Join(q[name], "\x00")))
	}
	return strings.Join(parts, "\n"), true
}

// FuzzSignedLinkMutation: one edit (a byte replaced, inserted or deleted)
// of a minted GET or PUT link, sent with any of GET, HEAD and PUT, is
// answered with 4xx and without the object, unless the edit left every
// signed field as minted (a reordered or percent-encoded query, an unknown
// parameter). Nothing is ever created outside the root, nor served from
// outside it.
func FuzzSignedLinkMutation(f *testing.F) {
	st, dir, object := fuzzStore(f)
	ctx := context.Background()
	get, err := st.PresignGet(ctx, "p/a b/x.bin", time.Hour, "x.bin")
	if err != nil {
		f.Fatal(err)
	}
	upload := []byte("another object")
	sum := sha256.Sum256(upload)
	put, err := st.PresignPut(ctx, "p/up/y.bin", int64(len(upload)), hex.EncodeToString(sum[:]), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	links := []string{strings.TrimPrefix(get.URL, "http://portal"), strings.TrimPrefix(put.URL, "http://portal")}
	methods := []string{"GET", "HEAD", "PUT"}
	if rec := serve(st, "GET", links[0], nil); rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), object) {
		f.Fatalf("the minted GET link does not serve the object: %d", rec.Code)
	}

	f.Add(uint8(0), uint8(0), uint8(0), uint16(len(links[0])-1), byte('A')) // last signature character
	f.Add(uint8(0), uint8(0), uint8(0), uint16(7), byte('.'))               // path segment
	f.Add(uint8(0), uint8(2), uint8(0), uint16(0), byte('/'))               // GET link as PUT
	f.Add(uint8(1), uint8(0), uint8(0), uint16(0), byte('/'))               // PUT link as GET
	f.Add(uint8(0), uint8(0), uint8(1), uint16(strings.Index(links[0], "?")), byte('&'))
	f.Add(uint8(1), uint8(2), uint8(0), uint16(strings.Index(links[1], "size=")+5), byte('1'))
	f.Add(uint8(1), uint8(2), uint8(2), uint16(strings.Index(links[1], "sha256=")+7), byte(0))
	f.Add(uint8(0), uint8(1), uint8(0), uint16(strings.Index(links[0], "kid=")+5), byte('2'))
	f.Add(uint8(0), uint8(0), uint8(1), uint16(strings.Index(links[0], "fn=")+3), byte('%'))

	f.Fuzz(func(t *testing.T, which, method, op uint8, pos uint16, b byte) {
		orig := links[int(which)%len(links)]
		m := methods[int(method)%len(methods)]
		mut := []byte(orig)
		i := int(pos) % (len(mut) + 1)
		switch op % 3 {
		case 0:
			if i == len(mut) {
				i--
			}
			mut[i] = b
		case 1:
			mut = append(mut[:i], append([]byte{b}, mut[i:]...)...)
		case 2:
			if i == len(mut) {
				i--
			}
			mut = append(mut[:i], mut[i+1:]...)
		}
		target := string(mut)
		var body []byte
		if m == "PUT" {
			body = upload
		}
		rec := serve(st, m, target, body)
		if rec == nil {
			return // not a request line a server would accept
		}
		if bytes.Contains(rec.Body.Bytes(), []byte(secretContent)) {
			t.Fatalf("%s %q served a file outside the root", m, target)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 2 {
			t.Fatalf("%s %q created something outside the root", m, target)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", m, target, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			return
		}
		got, ok1 := signedFields(m, target)
		want, ok2 := signedFields(map[bool]string{true: "GET", false: "PUT"}[which%2 == 0], orig)
		if !ok1 || !ok2 || got != want {
			t.Fatalf("%s %q answered %d, though it differs from the minted link %q in a signed field", m, target, rec.Code, orig)
		}
	})
}

// FuzzSignedKey: a correctly signed link for any key, which the portal
// itself would never mint, still never reads or writes outside the root,
// never answers 5xx, and serves only the one stored object.
func FuzzSignedKey(f *testing.F) {
	st, dir, object := fuzzStore(f)
	for _, k := range []string{
		"p/a b/x.bin", "../outside.txt", "p/../../outside.txt", "/outside.txt", "p/%2e%2e/x", "p/a b/x.bin/",
		"p//x", "p/a b/./x.bin", "p/\x00", "p/\u202e", "objects/../outside.txt", "p/a b/x.bin.meta", strings.Repeat("a/", 600),
	} {
		f.Add("GET", k, "f.bin")
		f.Add("PUT", k, "")
	}
	kr := st.keys.Current()
	exp := strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10)
	upload := []byte("x")
	sum := sha256.Sum256(upload)
	sumHex := hex.EncodeToString(sum[:])
	f.Fuzz(func(t *testing.T, method, key, filename string) {
		if method != "PUT" && method != "HEAD" {
			method = "GET"
		}
		signMethod, size, sh := method, "", ""
		var body []byte
		if method == "PUT" {
			size, sh, body, filename = "1", sumHex, upload, ""
		} else {
			signMethod = "GET"
		}
		sig := sign(kr, signMethod, exp, key, size, sh, filename)
		q := url.Values{qExpires: {exp}, qKeyID: {kr.ID}, qSig: {base64.RawURLEncoding.EncodeToString(sig)}}
		if size != "" {
			q.Set(qSize, size)
			q.Set(qSHA256, sh)
		}
		if filename != "" {
			q.Set(qFilename, filename)
		}
		target := "/blobs/" + escapeKey(key) + "?" + q.Encode()
		rec := serve(st, method, target, body)
		if rec == nil {
			return
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", method, key, rec.Code, rec.Body)
		}
		if bytes.Contains(rec.Body.Bytes(), []byte(secretContent)) {
			t.Fatalf("%s %q served a file outside the root", method, key)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 2 {
			t.Fatalf("%s %q created something outside the root", method, key)
		}
		if method == "GET" && rec.Code == http.StatusOK && !bytes.Equal(rec.Body.Bytes(), object) && !bytes.Equal(rec.Body.Bytes(), upload) {
			t.Fatalf("GET %q served %q, which no PUT stored", key, rec.Body.Bytes())
		}
	})
}
