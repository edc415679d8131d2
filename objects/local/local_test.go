package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
)

const secretContent = "TOP-SECRET-OUTSIDE-THE-ROOT"

type env struct {
	st      *Store
	srv     *httptest.Server
	dir     string // parent of the root; holds the outside files
	root    string
	logs    *bytes.Buffer
	outside string // a file outside the root
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, root: filepath.Join(dir, "objects"), logs: &bytes.Buffer{}}
	e.outside = filepath.Join(dir, "outside.txt")
	if err := os.WriteFile(e.outside, []byte(secretContent), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := NewKeyring(Key{ID: "k1", Secret: []byte("first-secret-0123456789abcdef-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = http.NotFoundHandler()
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	e.st, err = Open(Options{Root: e.root, BaseURL: e.srv.URL, Keys: keys,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	h = e.st.Handler()
	t.Cleanup(func() {
		if strings.Contains(e.logs.String(), "sig=") {
			t.Errorf("a signature reached the log:\n%s", e.logs)
		}
	})
	return e
}

// signedQuery builds a correctly signed query for any key, even one the
// store would never mint: the handler must refuse hostile paths on its own,
// not only because an attacker cannot sign them.
func (e *env) signedQuery(method, key string, exp int64, size, sum, filename string) string {
	k := e.st.keys.Current()
	expStr := strconv.FormatInt(exp, 10)
	sig := sign(k, method, expStr, key, size, sum, filename)
	q := url.Values{qExpires: {expStr}, qKeyID: {k.ID}, qSig: {base64.RawURLEncoding.EncodeToString(sig)}}
	if size != "" {
		q.Set(qSize, size)
	}
	if sum != "" {
		q.Set(qSHA256, sum)
	}
	if filename != "" {
		q.Set(qFilename, filename)
	}
	return q.Encode()
}

// raw sends bytes exactly as given (no client-side path cleaning or
// escaping) and reads the response.
func (e *env) raw(t *testing.T, request string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (e *env) rawGet(t *testing.T, target string) (*http.Response, []byte) {
	return e.raw(t, "GET "+target+" HTTP/1.1\r\nHost: portal\r\nConnection: close\r\n\r\n")
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// errorCode checks the JSON error shape and returns its code.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Error.Code == "" || v.Error.Message == "" {
		t.Fatalf("error body is not {\"error\":{\"code\",\"message\"}}: %q", body)
	}
	return v.Error.Code
}

func (e *env) assertOutsideUntouched(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(e.outside)
	if err != nil || string(b) != secretContent {
		t.Fatalf("file outside the root changed: %q %v", b, err)
	}
	entries, _ := os.ReadDir(e.dir)
	for _, en := range entries {
		if n := en.Name(); n != "objects" && n != "outside.txt" && n != "outdir" {
			t.Fatalf("something was created outside the root: %s", n)
		}
	}
}

func TestHostilePaths(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	future := time.Now().Add(time.Hour).Unix()

	// Planted inside the root: symlinks leading out of it, to a file and to
	// a directory, relative and absolute.
	outdir := filepath.Join(e.dir, "outdir")
	os.Mkdir(outdir, 0o755)
	os.WriteFile(filepath.Join(outdir, "outside.txt"), []byte(secretContent), 0o644)
	os.MkdirAll(filepath.Join(e.root, "p"), 0o755)
	mustSymlink(t, "../../outside.txt", filepath.Join(e.root, "p", "rel"))
	mustSymlink(t, e.outside, filepath.Join(e.root, "p", "abs"))
	mustSymlink(t, outdir, filepath.Join(e.root, "p", "dirlink"))
	mustSymlink(t, "../../outdir", filepath.Join(e.root, "p", "reldir"))

	long := strings.Repeat("k", 5000)
	getCases := []struct {
		name, path, key string // path as sent; key as signed
	}{
		{"dotdot", "/blobs/../outside.txt", "../outside.txt"},
		{"dotdot deep", "/blobs/p/../../outside.txt", "p/../../outside.txt"},
		{"encoded dotdot", "/blobs/%2e%2e%2foutside.txt", "../outside.txt"},
		{"encoded dotdot upper", "/blobs/p/%2E%2E/%2E%2E/outside.txt", "p/../../outside.txt"},
		{"absolute", "/blobs//" + strings.TrimPrefix(e.outside, "/"), e.outside},
		{"NUL byte", "/blobs/p/a%00b", "p/a\x00b"},
		{"backslash", "/blobs/..%5coutside.txt", `..\outside.txt`},
		{"symlink to file, relative", "/blobs/p/rel", "p/rel"},
		{"symlink to file, absolute", "/blobs/p/abs", "p/abs"},
		{"through symlinked dir", "/blobs/p/dirlink/outside.txt", "p/dirlink/outside.txt"},
		{"through relative symlinked dir", "/blobs/p/reldir/outside.txt", "p/reldir/outside.txt"},
		{"5000-character key", "/blobs/" + long, long},
		{"internal tmp dir", "/blobs/.tmp/x", ".tmp/x"},
		{"directory", "/blobs/p", "p"},
	}
	for _, c := range getCases {
		t.Run("GET "+c.name, func(t *testing.T) {
			resp, body := e.rawGet(t, c.path+"?"+e.signedQuery("GET", c.key, future, "", "", "x.bin"))
			if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Fatalf("status %s, want 4xx", resp.Status)
			}
			if bytes.Contains(body, []byte(secretContent)) {
				t.Fatal("served a file outside the root")
			}
			errorCode(t, body)
		})
	}
	// The store methods agree.
	for _, key := range []string{"p/rel", "p/abs", "p/dirlink/outside.txt", "p/reldir/outside.txt"} {
		if _, err := e.st.Stat(ctx, key); !portal.IsCode(err, portal.ENotFound) {
			t.Errorf("Stat %s: %v, want not_found", key, err)
		}
		if rc, err := e.st.Open(ctx, key); !portal.IsCode(err, portal.ENotFound) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("Open %s: %v, want not_found", key, err)
		}
	}

	body := []byte("attacker bytes")
	sum, size := hexSum(body), strconv.Itoa(len(body))
	putCases := []struct{ name, path, key string }{
		{"dotdot", "/blobs/../evil.txt", "../evil.txt"},
		{"encoded dotdot", "/blobs/%2e%2e%2fevil.txt", "../evil.txt"},
		{"absolute", "/blobs//" + strings.TrimPrefix(filepath.Join(e.dir, "evil.txt"), "/"), filepath.Join(e.dir, "evil.txt")},
		{"through symlinked dir", "/blobs/p/dirlink/evil.txt", "p/dirlink/evil.txt"},
		{"through relative symlinked dir", "/blobs/p/reldir/evil.txt", "p/reldir/evil.txt"},
		{"onto symlink to file", "/blobs/p/abs", "p/abs"},
		{"NUL byte", "/blobs/p/evil%00.txt", "p/evil\x00.txt"},
		{"5000-character key", "/blobs/" + long, long},
	}
	for _, c := range putCases {
		t.Run("PUT "+c.name, func(t *testing.T) {
			req := fmt.Sprintf("PUT %s?%s HTTP/1.1\r\nHost: portal\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				c.path, e.signedQuery("PUT", c.key, future, size, sum, ""), len(body), body)
			resp, b := e.raw(t, req)
			if c.name == "onto symlink to file" {
				// Rename replaces the link itself, inside the root: allowed,
				// and the outside file is untouched.
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %s: %s", resp.Status, b)
				}
				if fi, err := os.Lstat(filepath.Join(e.root, "p", "abs")); err != nil || !fi.Mode().IsRegular() {
					t.Fatalf("p/abs is not a regular file now: %v", err)
				}
			} else if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Fatalf("status %s, want 4xx: %s\nlog: %s", resp.Status, b, e.logs)
			} else {
				errorCode(t, b)
			}
			e.assertOutsideUntouched(t)
			if _, err := os.Stat(filepath.Join(outdir, "evil.txt")); err == nil {
				t.Fatal("PUT wrote through a symlink out of the root")
			}
		})
	}
	if n := countFiles(t, filepath.Join(e.root, tmpDir)); n != 0 {
		t.Errorf("%d upload files left in %s", n, tmpDir)
	}
}

func mustSymlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestMalformedLinks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	key := "p/prod/1/app.bin"
	put(t, e, key, []byte("content"))
	good, err := e.st.PresignGet(ctx, key, time.Minute, "app.bin")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(good.URL)
	path, q := u.EscapedPath(), u.RawQuery
	get := func(t *testing.T, query string) (*http.Response, []byte) { return e.rawGet(t, path+"?"+query) }

	resp, _ := get(t, q)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the untouched link: %s", resp.Status)
	}
	vals, _ := url.ParseQuery(q)
	with := func(name, value string) string {
		v := url.Values{}
		for k, vs := range vals {
			v[k] = vs
		}
		v.Set(name, value)
		return v.Encode()
	}
	without := func(name string) string {
		v := url.Values{}
		for k, vs := range vals {
			if k != name {
				v[k] = vs
			}
		}
		return v.Encode()
	}
	cases := []struct {
		name, query string
		status      int
		code        string
	}{
		{"duplicated exp", q + "&exp=" + vals.Get(qExpires), 400, portal.EInvalid},
		{"duplicated sig", q + "&sig=" + vals.Get(qSig), 400, portal.EInvalid},
		{"duplicated fn", q + "&fn=other.bin", 400, portal.EInvalid},
		{"non-numeric expiry", with(qExpires, "soon"), 400, portal.EInvalid},
		{"overflowing expiry", with(qExpires, "99999999999999999999"), 400, portal.EInvalid},
		{"negative expiry", with(qExpires, "-1"), 400, portal.EInvalid},
		{"signed expiry with a plus", with(qExpires, "+"+vals.Get(qExpires)), 400, portal.EInvalid},
		{"leading zero expiry", with(qExpires, "0"+vals.Get(qExpires)), 400, portal.EInvalid},
		{"missing expiry", without(qExpires), 400, portal.EInvalid},
		{"missing signature", without(qSig), 400, portal.EInvalid},
		{"signature of wrong length", with(qSig, "abcd"), 400, portal.EInvalid},
		{"bad query escaping", q + "&x=%zz", 400, portal.EInvalid},
		{"later expiry", with(qExpires, strconv.FormatInt(time.Now().Add(48*time.Hour).Unix(), 10)), 403, portal.ESignatureInvalid},
		{"other filename", with(qFilename, "evil.exe"), 403, portal.ESignatureInvalid},
		{"no filename", without(qFilename), 403, portal.ESignatureInvalid},
		{"unknown key ID", with(qKeyID, "k9"), 403, portal.ESignatureInvalid},
		{"tampered signature", with(qSig, base64.RawURLEncoding.EncodeToString(make([]byte, 32))), 403, portal.ESignatureInvalid},
		{"PUT parameters added", with(qSize, "7"), 403, portal.ESignatureInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := get(t, c.query)
			if resp.StatusCode != c.status {
				t.Fatalf("status %s, want %d: %s", resp.Status, c.status, body)
			}
			if got := errorCode(t, body); got != c.code {
				t.Fatalf("code %q, want %q", got, c.code)
			}
			if bytes.Contains(body, []byte(vals.Get(qSig))) {
				t.Fatal("the signature was echoed")
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		resp, body := e.rawGet(t, path+"?"+e.signedQuery("GET", key, time.Now().Add(-time.Second).Unix(), "", "", "app.bin"))
		if resp.StatusCode != 403 || errorCode(t, body) != portal.ELinkExpired {
			t.Fatalf("status %s body %s, want 403 link_expired", resp.Status, body)
		}
	})
	t.Run("method not allowed", func(t *testing.T) {
		resp, body := e.raw(t, "DELETE "+path+"?"+q+" HTTP/1.1\r\nHost: portal\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
			t.Fatalf("status %s Allow %q", resp.Status, resp.Header.Get("Allow"))
		}
		errorCode(t, body)
	})
	t.Run("outside /blobs/", func(t *testing.T) {
		resp, body := e.rawGet(t, "/other/"+key+"?"+q)
		if resp.StatusCode != 404 {
			t.Fatalf("status %s", resp.Status)
		}
		errorCode(t, body)
	})
}

func put(t *testing.T, e *env, key string, data []byte) {
	t.Helper()
	sr, err := e.st.PresignPut(context.Background(), key, int64(len(data)), hexSum(data), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(sr.Method, sr.URL, bytes.NewReader(data))
	req.Header.Set("x-amz-checksum-sha256", sr.Headers["x-amz-checksum-sha256"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %s %s", key, resp.Status, b)
	}
}

func TestGetResponse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	key := "p/prod/1/page.html"
	put(t, e, key, []byte("<html><script>alert(1)</script>"+string(data)))
	sr, err := e.st.PresignGet(ctx, key, time.Minute, "page.html")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(sr.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{
		"Content-Type":           "application/octet-stream", // never sniffed into text/html
		"Content-Disposition":    `attachment; filename="page.html"`,
		"Cache-Control":          "private, no-store",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if resp.Header.Get("Last-Modified") == "" {
		t.Error("no Last-Modified (If-Range needs it)")
	}

	// If-Range with the current Last-Modified gives the range, with an old
	// date the whole object.
	for _, c := range []struct {
		ifRange string
		status  int
	}{
		{resp.Header.Get("Last-Modified"), 206},
		{"Mon, 02 Jan 2006 15:04:05 GMT", 200},
	} {
		req, _ := http.NewRequest("GET", sr.URL, nil)
		req.Header.Set("Range", "bytes=0-4")
		req.Header.Set("If-Range", c.ifRange)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != c.status {
			t.Errorf("If-Range %q: %s, want %d", c.ifRange, r.Status, c.status)
		}
	}

	// An unsatisfiable range is a JSON error too.
	req, _ := http.NewRequest("GET", sr.URL, nil)
	req.Header.Set("Range", "bytes=999999-")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("status %s", r.Status)
	}
	errorCode(t, b)
	if r.Header.Get("Content-Disposition") != "" {
		t.Error("error response carries Content-Disposition")
	}
}

func TestPutRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := []byte("exactly these bytes")
	key := "p/prod/1/rules.bin"
	sr, err := e.st.PresignPut(ctx, key, int64(len(data)), hexSum(data), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(sr.URL)
	target := u.RequestURI()

	t.Run("chunked", func(t *testing.T) {
		req := "PUT " + target + " HTTP/1.1\r\nHost: portal\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(data), data)
		resp, b := e.raw(t, req)
		if resp.StatusCode != http.StatusLengthRequired {
			t.Fatalf("status %s, want 411", resp.Status)
		}
		errorCode(t, b)
	})
	t.Run("no Content-Length", func(t *testing.T) {
		resp, b := e.raw(t, "PUT "+target+" HTTP/1.1\r\nHost: portal\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusLengthRequired {
			t.Fatalf("status %s, want 400 or 411", resp.Status)
		}
		errorCode(t, b)
	})
	t.Run("interrupted", func(t *testing.T) {
		c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: portal\r\nContent-Length: %d\r\n\r\n%s", target, len(data), data[:5])
		time.Sleep(100 * time.Millisecond)
		c.Close()
		deadline := time.Now().Add(5 * time.Second)
		for countFiles(t, filepath.Join(e.root, tmpDir)) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("interrupted upload left a temp file")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("malformed checksum header", func(t *testing.T) {
		resp, b := e.raw(t, fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: portal\r\nContent-Length: %d\r\nx-amz-checksum-sha256: !!!\r\nConnection: close\r\n\r\n%s", target, len(data), data))
		if resp.StatusCode != 400 {
			t.Fatalf("status %s", resp.Status)
		}
		errorCode(t, b)
	})
	if _, err := e.st.Stat(ctx, key); !portal.IsCode(err, portal.ENotFound) {
		t.Fatalf("after refused uploads Stat says %v, want not_found", err)
	}

	t.Run("authorization ignored", func(t *testing.T) {
		resp, b := e.raw(t, fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: portal\r\nAuthorization: Bearer x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", target, len(data), data))
		if resp.StatusCode != 200 {
			t.Fatalf("status %s: %s", resp.Status, b)
		}
	})
	info, err := e.st.Stat(ctx, key)
	if err != nil || info.SHA256 != hexSum(data) || info.Size != int64(len(data)) {
		t.Fatalf("Stat %+v %v", info, err)
	}
	// A file changed behind the store's back loses its recorded hash rather
	// than reporting a wrong one.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(e.root, key), []byte("changed!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if info, err := e.st.Stat(ctx, key); err != nil || info.SHA256 != "" || info.Size != 8 {
		t.Fatalf("Stat after outside change: %+v %v", info, err)
	}
	if err := e.st.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.root, metaDir, key)); err == nil {
		t.Error("Delete left the hash record")
	}
	// A key that is a directory (a prefix of other keys) is no object.
	put(t, e, "p/prod/2/a.bin", []byte("a"))
	if err := e.st.Delete(ctx, "p/prod/2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Stat(ctx, "p/prod/2/a.bin"); err != nil {
		t.Fatalf("Delete of a prefix removed its objects: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	key := "p/prod/1/r.bin"
	put(t, e, key, []byte("rotate"))
	old, err := e.st.PresignGet(ctx, key, time.Minute, "r.bin")
	if err != nil {
		t.Fatal(err)
	}
	oldKey := e.st.keys.Current()
	newKey, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	status := func(keys Keyring, sr objects.SignedRequest) int {
		st, err := Open(Options{Root: e.root, BaseURL: e.srv.URL, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		u, _ := url.Parse(sr.URL)
		rec := httptest.NewRecorder()
		st.Handler().ServeHTTP(rec, httptest.NewRequest("GET", u.RequestURI(), nil))
		return rec.Code
	}
	rotated, err := NewKeyring(oldKey, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := status(rotated, old); got != 200 {
		t.Fatalf("link signed by the previous key after rotation: %d, want 200", got)
	}
	st, _ := Open(Options{Root: e.root, BaseURL: e.srv.URL, Keys: rotated})
	fresh, _ := st.PresignGet(ctx, key, time.Minute, "r.bin")
	st.Close()
	if !strings.Contains(fresh.URL, "kid="+newKey.ID) {
		t.Fatalf("new links are not signed by the newest key: %s", fresh.URL)
	}
	retired, _ := NewKeyring(newKey)
	if got := status(retired, old); got != 403 {
		t.Fatalf("link of a removed key: %d, want 403", got)
	}
	if got := status(retired, fresh); got != 200 {
		t.Fatalf("link of the current key: %d, want 200", got)
	}
}

func TestKeyring(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "blob-keys")
	k1, err := LoadOrCreateKeyring(path, "")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if len(k1.Current().Secret) < MinSecretLen {
		t.Fatalf("generated secret has %d bytes", len(k1.Current().Secret))
	}
	k2, err := LoadOrCreateKeyring(path, "")
	if err != nil || k2.Current().ID != k1.Current().ID || !bytes.Equal(k2.Current().Secret, k1.Current().Secret) {
		t.Fatalf("second start did not reuse the key: %v", err)
	}
	if strings.Contains(k1.String(), string(k1.Current().Secret)) {
		t.Fatal("String shows the secret")
	}

	// Rotation by appending a line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "k2:%s\n", strings.Repeat("z", 40))
	f.Close()
	k3, err := LoadOrCreateKeyring(path, "")
	if err != nil || k3.Len() != 2 || k3.Current().ID != "k2" {
		t.Fatalf("after appending a key: %v %v", k3, err)
	}
	if _, ok := k3.Lookup(k1.Current().ID); !ok {
		t.Fatal("the older key no longer verifies")
	}

	// A configured secret wins and leaves the file alone.
	cfg, err := LoadOrCreateKeyring(filepath.Join(dir, "never"), strings.Repeat("s", 32))
	if err != nil || cfg.Current().ID != DefaultKeyID {
		t.Fatalf("configured: %v %v", cfg, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Fatal("a configured secret created a key file")
	}

	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateKeyring(path, ""); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}

	long := strings.Repeat("x", 32)
	for _, c := range []struct {
		text string
		ok   bool
		n    int
	}{
		{"a:" + long + ",b:" + long, true, 2},
		{"# c\n\na:" + long + "\n b:" + long + " \n", true, 2},
		{long, true, 1},
		{"a:short", false, 0},
		{"a:" + long + "\na:" + long, false, 0},
		{"bad id!:" + long, false, 0},
		{"a:" + long[:20] + " " + long, false, 0},
		{"# nothing", false, 0},
	} {
		k, err := ParseKeyring(c.text)
		if (err == nil) != c.ok || (c.ok && k.Len() != c.n) {
			t.Errorf("ParseKeyring(%q): %v %v", c.text, k, err)
		}
		if c.ok {
			if back, err := ParseKeyring(k.Format()); err != nil || back.Len() != k.Len() {
				t.Errorf("Format does not round-trip: %v", err)
			}
		}
	}
}

func TestStaleUploadsRemoved(t *testing.T) {
	e := newEnv(t)
	stale := filepath.Join(e.root, tmpDir, "stale")
	fresh := filepath.Join(e.root, tmpDir, "fresh")
	os.WriteFile(stale, []byte("x"), 0o600)
	os.WriteFile(fresh, []byte("x"), 0o600)
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(stale, old, old)
	st, err := Open(Options{Root: e.root, BaseURL: e.srv.URL, Keys: e.st.keys})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale upload kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("recent upload removed")
	}
}

func TestOpenOptions(t *testing.T) {
	keys, _ := NewKeyring(Key{ID: "k", Secret: bytes.Repeat([]byte("s"), 32)})
	for _, base := range []string{"", "ftp://x", "http://", "http://x/?a=b", "http://u:p@x"} {
		if _, err := Open(Options{Root: t.TempDir(), BaseURL: base, Keys: keys}); err == nil {
			t.Errorf("BaseURL %q accepted", base)
		}
	}
	if _, err := Open(Options{Root: t.TempDir(), BaseURL: "http://x"}); err == nil {
		t.Error("no keyring accepted")
	}
	st, err := Open(Options{Root: t.TempDir(), BaseURL: "http://x/portal/", Keys: keys, MaxTTL: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.MaxTTL() != objects.MaxLinkTTL {
		t.Errorf("MaxTTL %v, want capped at 7 days", st.MaxTTL())
	}
	sr, _ := st.PresignGet(context.Background(), "p/a b/ü?.bin", time.Minute, "")
	if !strings.HasPrefix(sr.URL, "http://x/portal/blobs/p/a%20b/%C3%BC%3F.bin?") {
		t.Errorf("URL %s", sr.URL)
	}
	if sr.Headers != nil {
		t.Errorf("GET headers %v", sr.Headers)
	}
}

// FuzzHandler: no path or query makes the handler panic, answer 2xx
// without a valid signature, or touch anything outside the root.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{
		"/blobs/p/x?exp=1&kid=k1&sig=AAAA", "/blobs/../x", "/blobs/%2e%2e%2fx?exp=99999999999999999999",
		"/blobs/p/x?exp=1&exp=2", "/blobs/a%00b?sig=" + strings.Repeat("A", 43), "/blobs/" + strings.Repeat("a/", 600),
		"/blobs/p/x?fn=%ff&size=-1&sha256=zz", "/other", "/blobs/",
	} {
		f.Add("GET", s)
		f.Add("PUT", s)
	}
	dir := f.TempDir()
	keys, _ := NewKeyring(Key{ID: "k1", Secret: bytes.Repeat([]byte("s"), 32)})
	st, err := Open(Options{Root: filepath.Join(dir, "objects"), BaseURL: "http://portal", Keys: keys})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	h := st.Handler()
	f.Fuzz(func(t *testing.T, method, target string) {
		if method != "GET" && method != "PUT" && method != "HEAD" {
			method = "GET"
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		req := &http.Request{Method: method, URL: u, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("x")), ContentLength: 1, Host: "portal"}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 400 || rec.Code > 499 {
			t.Fatalf("%s %q: status %d", method, target, rec.Code)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("%s %q created something outside the root", method, target)
		}
	})
}
