package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		want   Error
	}{
		{"envelope", 403, `{"error":{"code":"not_entitled","message":"this license is for x"}}`,
			Error{Status: 403, Code: "not_entitled", Message: "this license is for x"}},
		{"mismatch", 422, `{"error":{"code":"unprocessable","message":"m","expected":{"size":3,"sha256":"aa"},"actual":{"size":2}}}`,
			Error{Status: 422, Code: "unprocessable", Message: "m", Expected: &Sum{3, "aa"}, Actual: &Sum{Size: 2}}},
		{"proxy page", 502, "<html>Bad Gateway</html>", Error{Status: 502, Message: "<html>Bad Gateway</html>"}},
		{"empty", 500, "", Error{Status: 500, Message: "Internal Server Error"}},
	} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				t.Errorf("%s: Authorization %q", c.name, r.Header.Get("Authorization"))
			}
			w.WriteHeader(c.status)
			io.WriteString(w, c.body)
		}))
		_, err := New(ts.URL+"/", Bearer("tok")).Release(context.Background(), "p", "1.0.0")
		ts.Close()
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: %v is not an *Error", c.name, err)
		}
		if e.Status != c.want.Status || e.Code != c.want.Code || e.Message != c.want.Message ||
			(c.want.Expected != nil && (e.Expected == nil || *e.Expected != *c.want.Expected || *e.Actual != *c.want.Actual)) {
			t.Errorf("%s: %+v, want %+v", c.name, e, c.want)
		}
	}
}

func TestUploadFile(t *testing.T) {
	body := []byte(strings.Repeat("0123456789", 25)) // 250 bytes
	var mu sync.Mutex
	got := map[string][]byte{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Signed") != "yes" {
			t.Errorf("PUT headers: %v", r.Header)
		}
		b, _ := io.ReadAll(r.Body)
		if int64(len(b)) != r.ContentLength {
			t.Errorf("PUT %s: %d bytes, Content-Length %d", r.URL, len(b), r.ContentLength)
		}
		mu.Lock()
		got[r.URL.Query().Get("part")] = b
		mu.Unlock()
	}))
	defer ts.Close()
	c := New(ts.URL, Bearer("tok"))
	part := func(n, size string) SignedRequest {
		return SignedRequest{Method: "PUT", URL: ts.URL + "/o?part=" + n, Headers: map[string]string{"X-Signed": "yes", "Content-Length": size}}
	}
	var sent int64
	var smu sync.Mutex
	progress := func(n int64) { smu.Lock(); sent += n; smu.Unlock() }

	up := Upload{Multipart: true, PartSize: 100, Parts: []SignedRequest{part("1", "100"), part("2", "100"), part("3", "50")}}
	if err := c.UploadFile(context.Background(), up, bytes.NewReader(body), 250, UploadOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(append(got["1"], got["2"]...), got["3"]...), body) || sent != 250 {
		t.Fatalf("parts %q, progress %d", got, sent)
	}

	// Instructions that cannot fit the file are refused before any PUT.
	clear(got)
	up.Parts = up.Parts[:2]
	if err := c.UploadFile(context.Background(), up, bytes.NewReader(body), 250, UploadOptions{}); err == nil || len(got) != 0 {
		t.Fatalf("2 parts for 250 bytes: %v, %d PUTs", err, len(got))
	}
	single := Upload{SignedRequest: part("", "249")}
	if err := c.UploadFile(context.Background(), single, bytes.NewReader(body), 250, UploadOptions{}); err == nil || len(got) != 0 {
		t.Fatalf("signed length 249 for 250 bytes: %v, %d PUTs", err, len(got))
	}
}
