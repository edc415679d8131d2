// Package objectstest is the conformance suite every objects.ObjectStore
// backend must pass, run through real HTTP with nothing but the minted
// SignedRequests, plus helpers that give other packages' tests a real store.
package objectstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/local"
)

// LocalStore opens a local store in a temp directory, serves its /blobs/
// handler from an httptest server (closed with the test) and returns both.
// The handler is the server's only handler, so hostile paths reach it
// unchanged.
func LocalStore(t testing.TB) (*local.Store, *httptest.Server) {
	t.Helper()
	dir := t.TempDir()
	keys, err := local.LoadOrCreateKeyring(filepath.Join(dir, "blob-keys"), "")
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	st, err := local.Open(local.Options{Root: filepath.Join(dir, "objects"), BaseURL: srv.URL, Keys: keys})
	if err != nil {
		t.Fatalf("local.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	h = st.Handler()
	return st, srv
}

// Do sends sr with body through plain net/http, exactly as a client would:
// the minted URL and headers, nothing else (Content-Length from Headers sets
// the request's length). mutate, when not nil, may alter the request first.
func Do(t testing.TB, sr objects.SignedRequest, body []byte, mutate func(*http.Request)) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(sr.Method, sr.URL, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range sr.Headers {
		if strings.EqualFold(k, "Content-Length") {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("Content-Length header %q: %v", v, err)
			}
			req.ContentLength = n
			if n == 0 && len(body) == 0 {
				req.Body = http.NoBody
			}
			continue
		}
		req.Header.Set(k, v)
	}
	if mutate != nil {
		mutate(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, redact(req.URL), err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// Upload puts data under key through a minted PUT and fails the test unless
// the store accepts it.
func Upload(t testing.TB, s objects.ObjectStore, key string, data []byte) {
	t.Helper()
	sr, err := s.PresignPut(context.Background(), key, int64(len(data)), SHA256(data), time.Minute)
	if err != nil {
		t.Fatalf("PresignPut %s: %v", key, err)
	}
	resp := Do(t, sr, data, nil)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %s: %s", key, resp.Status, b)
	}
}

// SHA256 is the lower-hex SHA-256 of data.
func SHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// RandomKey returns a fresh key ending in file, unique per call.
func RandomKey(file string) string {
	return "p/conformance/" + rand.Text()[:16] + "/" + file
}

// RandomBytes returns n random bytes.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.String() + "?…"
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

func expectStatus(t testing.TB, what string, resp *http.Response, want int) []byte {
	t.Helper()
	b := readAll(t, resp)
	if resp.StatusCode != want {
		t.Fatalf("%s: status %s, want %d; body: %.300s", what, resp.Status, want, b)
	}
	return b
}

func expect4xx(t testing.TB, what string, resp *http.Response) []byte {
	t.Helper()
	b := readAll(t, resp)
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Fatalf("%s: status %s, want 4xx; body: %.300s", what, resp.Status, b)
	}
	return b
}

func expectNotFound(t testing.TB, s objects.ObjectStore, key string) {
	t.Helper()
	_, err := s.Stat(context.Background(), key)
	if !portal.IsCode(err, portal.ENotFound) {
		t.Fatalf("Stat %s: err %v, want code %s", key, err, portal.ENotFound)
	}
}

// withQuery returns u with query parameter name (matched case-insensitively)
// replaced by change(old value).
func withQuery(t testing.TB, u string, names []string, change func(string) string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse minted URL: %v", err)
	}
	q := pu.Query()
	for k, vs := range q {
		for _, n := range names {
			if strings.EqualFold(k, n) {
				q[k] = []string{change(vs[0])}
				pu.RawQuery = q.Encode()
				return pu.String()
			}
		}
	}
	t.Fatalf("minted URL has none of the query parameters %v", names)
	return ""
}

// signatureParams are the signature query parameters of the known backends.
var signatureParams = []string{"sig", "X-Amz-Signature"}

// flip changes one character of a signature in a way that keeps its format.
func flip(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'a' {
		b[i] = 'b'
	} else {
		b[i] = 'a'
	}
	return string(b)
}

// Run runs the conformance suite. newStore returns a ready store for one
// test (it may be shared between calls); keys are random, so stores may be
// shared across runs. Backends implementing objects.Multipart also get
// the multipart tests.
func Run(t *testing.T, newStore func(t *testing.T) objects.ObjectStore) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		data := RandomBytes(100_000)
		key := RandomKey("app-1.0.bin")
		Upload(t, s, key, data)

		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if info.Size != int64(len(data)) {
			t.Errorf("Stat size %d, want %d", info.Size, len(data))
		}
		if info.SHA256 != "" && info.SHA256 != SHA256(data) {
			t.Errorf("Stat SHA256 %s, want %s", info.SHA256, SHA256(data))
		}

		rc, err := s.Open(ctx, key)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Open read back %d bytes (err %v), want the %d uploaded", len(got), err, len(data))
		}

		for _, name := range []string{"App Setup 1.0 (x64).exe", "Prüfung-ünïcode 版本.zip", `q"uote;d.tar.gz`} {
			sr, err := s.PresignGet(ctx, key, time.Minute, name)
			if err != nil {
				t.Fatalf("PresignGet: %v", err)
			}
			if sr.Method != http.MethodGet {
				t.Errorf("GET method %q", sr.Method)
			}
			if d := time.Until(sr.ExpiresAt); d < 50*time.Second || d > 61*time.Second {
				t.Errorf("ExpiresAt %v is %v away, want ~1m", sr.ExpiresAt, d)
			}
			resp := Do(t, sr, nil, func(r *http.Request) {
				// Clients keep the license header on same-host redirects;
				// minted links must work regardless (local store ignores it,
				// S3 links are not tested with it: S3 refuses both).
				if strings.Contains(r.URL.RawQuery, "sig=") {
					r.Header.Set("Authorization", "License nonsense")
				}
			})
			if b := expectStatus(t, "GET", resp, http.StatusOK); !bytes.Equal(b, data) {
				t.Fatalf("GET returned %d bytes, different from the %d uploaded", len(b), len(data))
			}
			cd := resp.Header.Get("Content-Disposition")
			typ, params, err := mime.ParseMediaType(cd)
			if err != nil || typ != "attachment" || params["filename"] != name {
				t.Errorf("Content-Disposition %q parses to %q %q (%v), want attachment for %q", cd, typ, params["filename"], err, name)
			}
		}

		sr, err := s.PresignGet(ctx, key, time.Minute, "")
		if err != nil {
			t.Fatalf("PresignGet: %v", err)
		}
		resp := Do(t, sr, nil, func(r *http.Request) { r.Header.Set("Range", "bytes=1000-1999") })
		if b := expectStatus(t, "GET Range", resp, http.StatusPartialContent); !bytes.Equal(b, data[1000:2000]) {
			t.Errorf("Range returned other bytes")
		}
		if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-1999/%d", len(data)) {
			t.Errorf("Content-Range %q", cr)
		}
		_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		if params["filename"] != "app-1.0.bin" {
			t.Errorf("default filename %q, want the key's last segment", params["filename"])
		}

		// SigV4 signs the method, so an S3 GET URL cannot serve HEAD (S3
		// answers 403); portal-signed links accept HEAD with a GET link.
		if !strings.Contains(sr.URL, "X-Amz-Signature=") {
			head := sr
			head.Method = http.MethodHead
			resp = Do(t, head, nil, nil)
			expectStatus(t, "HEAD with a GET link", resp, http.StatusOK)
			if resp.ContentLength != int64(len(data)) {
				t.Errorf("HEAD Content-Length %d, want %d", resp.ContentLength, len(data))
			}
		}
	})

	t.Run("PutHeaders", func(t *testing.T) {
		s := newStore(t)
		data := []byte("hello")
		sr, err := s.PresignPut(ctx, RandomKey("h.txt"), 5, SHA256(data), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if sr.Method != http.MethodPut || sr.Headers["Content-Length"] != "5" ||
			sr.Headers["x-amz-checksum-sha256"] != "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=" {
			t.Errorf("PUT request %s headers %v: want Content-Length and x-amz-checksum-sha256", sr.Method, sr.Headers)
		}
		u, err := url.Parse(sr.URL)
		if err != nil {
			t.Fatal(err)
		}
		for name := range u.Query() {
			if l := strings.ToLower(name); l == "content-length" || strings.HasPrefix(l, "x-amz-checksum") {
				t.Errorf("%s went into the query string, where S3 ignores it", name)
			}
		}
		if sh := u.Query().Get("X-Amz-SignedHeaders"); sh != "" && sh != "content-length;host;x-amz-checksum-sha256" {
			t.Errorf("SigV4 signed headers %q, want content-length;host;x-amz-checksum-sha256", sh)
		}
	})

	t.Run("EmptyObject", func(t *testing.T) {
		s := newStore(t)
		key := RandomKey("empty")
		Upload(t, s, key, []byte{})
		info, err := s.Stat(ctx, key)
		if err != nil || info.Size != 0 {
			t.Fatalf("Stat: %+v %v", info, err)
		}
		sr, err := s.PresignPut(ctx, RandomKey("empty"), 0, SHA256(nil), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		sr.Headers["Content-Length"] = "1"
		expect4xx(t, "PUT of 1 byte with an empty-object link", Do(t, sr, []byte("x"), nil))
	})

	t.Run("Overwrite", func(t *testing.T) {
		s := newStore(t)
		key := RandomKey("o.bin")
		Upload(t, s, key, RandomBytes(3000))
		second := RandomBytes(1000)
		Upload(t, s, key, second)
		info, err := s.Stat(ctx, key)
		if err != nil || info.Size != 1000 || (info.SHA256 != "" && info.SHA256 != SHA256(second)) {
			t.Fatalf("Stat after overwrite: %+v %v", info, err)
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		s := newStore(t)
		data := RandomBytes(4096)
		key, other := RandomKey("a.bin"), RandomKey("b.bin")
		Upload(t, s, key, data)
		Upload(t, s, other, data)

		expiring, err := s.PresignGet(ctx, key, time.Second, "a.bin")
		if err != nil {
			t.Fatal(err)
		}
		sr, err := s.PresignGet(ctx, key, time.Minute, "a.bin")
		if err != nil {
			t.Fatal(err)
		}

		tampered := sr
		tampered.URL = withQuery(t, sr.URL, signatureParams, flip)
		expectStatus(t, "GET with a tampered signature", Do(t, tampered, nil, nil), http.StatusForbidden)

		moved := sr
		moved.URL = strings.Replace(sr.URL, escapePath(key), escapePath(other), 1)
		if moved.URL == sr.URL {
			t.Fatal("could not find the key in the minted URL")
		}
		expectStatus(t, "GET with a changed key", Do(t, moved, nil, nil), http.StatusForbidden)

		asPut := sr
		asPut.Method = http.MethodPut
		expectStatus(t, "PUT with a GET link", Do(t, asPut, []byte("evil"), nil), http.StatusForbidden)
		if b := get(t, s, key); !bytes.Equal(b, data) {
			t.Fatal("object changed after a refused PUT")
		}

		put, err := s.PresignPut(ctx, key, int64(len(data)), SHA256(data), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		asGet := put
		asGet.Method, asGet.Headers = http.MethodGet, nil
		expectStatus(t, "GET with a PUT link", Do(t, asGet, nil, nil), http.StatusForbidden)

		if d := time.Until(expiring.ExpiresAt); d > time.Second {
			t.Fatalf("1 s link expires in %v", d)
		}
		time.Sleep(time.Until(expiring.ExpiresAt) + 1500*time.Millisecond)
		expectStatus(t, "GET with an expired link", Do(t, expiring, nil, nil), http.StatusForbidden)
	})

	t.Run("BadBodies", func(t *testing.T) {
		s := newStore(t)
		data := RandomBytes(2048)
		cases := []struct {
			name   string
			body   []byte
			mutate func(*http.Request)
		}{
			{"one byte more", append(append([]byte{}, data...), 'x'), func(r *http.Request) { r.ContentLength++ }},
			{"one byte less", data[1:], func(r *http.Request) { r.ContentLength-- }},
			{"short body, declared size", data[:1024], nil},
			{"same size, other bytes", flipByte(data), nil},
			{"other checksum header", data, func(r *http.Request) {
				r.Header.Set("x-amz-checksum-sha256", "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				key := RandomKey("bad.bin")
				sr, err := s.PresignPut(ctx, key, int64(len(data)), SHA256(data), time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				req, err := http.NewRequest(sr.Method, sr.URL, bytes.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range sr.Headers {
					if k != "Content-Length" {
						req.Header.Set(k, v)
					}
				}
				req.ContentLength = int64(len(data))
				if c.mutate != nil {
					c.mutate(req)
				}
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					b := expect4xx(t, "PUT "+c.name, resp)
					t.Logf("refused: %s %.300s", resp.Status, b)
					resp.Body.Close()
				} // else: the client itself refused a body shorter than declared
				expectNotFound(t, s, key)
			})
		}
	})

	t.Run("StatOpenDelete", func(t *testing.T) {
		s := newStore(t)
		key := RandomKey("x.bin")
		expectNotFound(t, s, key)
		if _, err := s.Open(ctx, key); !portal.IsCode(err, portal.ENotFound) {
			t.Fatalf("Open missing: %v, want not_found", err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete missing: %v", err)
		}
		Upload(t, s, key, []byte("data"))
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		expectNotFound(t, s, key)
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete again: %v", err)
		}
		// A prefix of an existing key is not an object.
		Upload(t, s, key+"/child", []byte("c"))
		expectNotFound(t, s, key)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	t.Run("InvalidInput", func(t *testing.T) {
		s := newStore(t)
		sum := SHA256(nil)
		for _, key := range []string{"", "../x", "/abs", "a//b", "a/./b", "a/../b", "a/b/", "nul\x00byte", `back\slash`, strings.Repeat("k", 5000)} {
			if _, err := s.PresignGet(ctx, key, time.Minute, "f"); !portal.IsCode(err, portal.EInvalid) {
				t.Errorf("PresignGet(%.40q): %v, want invalid", key, err)
			}
			if _, err := s.PresignPut(ctx, key, 0, sum, time.Minute); !portal.IsCode(err, portal.EInvalid) {
				t.Errorf("PresignPut(%.40q): %v, want invalid", key, err)
			}
			if _, err := s.Stat(ctx, key); !portal.IsCode(err, portal.EInvalid) {
				t.Errorf("Stat(%.40q): %v, want invalid", key, err)
			}
			if _, err := s.Open(ctx, key); !portal.IsCode(err, portal.EInvalid) {
				t.Errorf("Open(%.40q): %v, want invalid", key, err)
			}
			if err := s.Delete(ctx, key); !portal.IsCode(err, portal.EInvalid) {
				t.Errorf("Delete(%.40q): %v, want invalid", key, err)
			}
		}
		key := RandomKey("f")
		for _, name := range []string{"a/b", "..", "tab\tname", "x\\y"} {
			if _, err := s.PresignGet(ctx, key, time.Minute, name); !portal.IsCode(err, portal.EInvalid) {
				t.Errorf("PresignGet filename %q: %v, want invalid", name, err)
			}
		}
		for _, h := range []string{"", "ABC", strings.ToUpper(sum), sum[:63] + "g"} {
			if _, err := s.PresignPut(ctx, key, 0, h, time.Minute); !portal.IsCode(err, portal.EInvalid) {
				t.Errorf("PresignPut sha256 %q: %v, want invalid", h, err)
			}
		}
		if _, err := s.PresignPut(ctx, key, -1, sum, time.Minute); !portal.IsCode(err, portal.EInvalid) {
			t.Errorf("PresignPut size -1: %v, want invalid", err)
		}
		if _, err := s.PresignGet(ctx, key, 0, "f"); !portal.IsCode(err, portal.EInvalid) {
			t.Errorf("PresignGet ttl 0: %v, want invalid", err)
		}
	})

	t.Run("TTLCap", func(t *testing.T) {
		s := newStore(t)
		max := s.MaxTTL()
		if max <= 0 || max > objects.MaxLinkTTL {
			t.Fatalf("MaxTTL %v outside (0, 7 days]", max)
		}
		sr, err := s.PresignGet(ctx, RandomKey("f"), 30*24*time.Hour, "f")
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(sr.ExpiresAt); d > max+time.Second || d < max-time.Minute {
			t.Errorf("30-day link expires in %v, want capped to MaxTTL %v", d, max)
		}
	})

	t.Run("Multipart", func(t *testing.T) {
		s := newStore(t)
		mp, ok := s.(objects.Multipart)
		if !ok {
			t.Skip("backend has no multipart uploads")
		}
		key := RandomKey("big.bin")
		data := RandomBytes(objects.MinPartSize + 1024)
		id, err := mp.CreateMultipart(ctx, key)
		if err != nil {
			t.Fatalf("CreateMultipart: %v", err)
		}
		parts := [][]byte{data[:objects.MinPartSize], data[objects.MinPartSize:]}
		// Part 2 first: completion must order parts itself.
		for _, n := range []int32{2, 1} {
			p := parts[n-1]
			sr, err := mp.PresignPart(ctx, key, id, n, int64(len(p)), time.Minute)
			if err != nil {
				t.Fatalf("PresignPart %d: %v", n, err)
			}
			if sr.Headers["Content-Length"] != strconv.Itoa(len(p)) {
				t.Errorf("part %d headers %v lack Content-Length", n, sr.Headers)
			}
			if n == 2 {
				// The signed Content-Length refuses another size.
				short := p[:len(p)-1]
				expect4xx(t, "part with the wrong size", Do(t, sr, short, func(r *http.Request) { r.ContentLength = int64(len(short)) }))
			}
			expectStatus(t, fmt.Sprintf("PUT part %d", n), Do(t, sr, p, nil), http.StatusOK)
		}
		if err := mp.CompleteMultipart(ctx, key, id); err != nil {
			t.Fatalf("CompleteMultipart: %v", err)
		}
		info, err := s.Stat(ctx, key)
		if err != nil || info.Size != int64(len(data)) {
			t.Fatalf("Stat after multipart: %+v %v", info, err)
		}
		if info.SHA256 != "" && info.SHA256 != SHA256(data) {
			t.Errorf("multipart SHA256 %s, want %s or empty", info.SHA256, SHA256(data))
		}
		if b := get(t, s, key); !bytes.Equal(b, data) {
			t.Fatal("multipart object differs from the parts")
		}

		// Abort discards; a second abort and completing after abort behave.
		key2 := RandomKey("aborted.bin")
		id2, err := mp.CreateMultipart(ctx, key2)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := mp.PresignPart(ctx, key2, id2, 1, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		expectStatus(t, "PUT part", Do(t, sr, []byte("0123456789"), nil), http.StatusOK)
		if err := mp.AbortMultipart(ctx, key2, id2); err != nil {
			t.Fatalf("AbortMultipart: %v", err)
		}
		if err := mp.AbortMultipart(ctx, key2, id2); err != nil {
			t.Fatalf("AbortMultipart again: %v", err)
		}
		if err := mp.CompleteMultipart(ctx, key2, id2); err == nil {
			t.Fatal("CompleteMultipart after abort succeeded")
		}
		expectNotFound(t, s, key2)

		// Completing an upload without parts is refused.
		key3 := RandomKey("noparts.bin")
		id3, err := mp.CreateMultipart(ctx, key3)
		if err != nil {
			t.Fatal(err)
		}
		if err := mp.CompleteMultipart(ctx, key3, id3); !portal.IsCode(err, portal.EInvalid) {
			t.Fatalf("CompleteMultipart without parts: %v, want invalid", err)
		}
		_ = mp.AbortMultipart(ctx, key3, id3)
	})
}

func get(t testing.TB, s objects.ObjectStore, key string) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func flipByte(b []byte) []byte {
	c := append([]byte{}, b...)
	c[len(c)/2] ^= 0xff
	return c
}

// escapePath escapes key the way both backends put it in a URL path (the
// random keys this suite uses need no escaping at all).
func escapePath(key string) string {
	u := url.URL{Path: key}
	return u.EscapedPath()
}
