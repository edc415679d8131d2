package local

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
)

// Handler serves the store's signed links. Mount it at /blobs/ (the request
// path must start with /blobs/; a router must pass the path unchanged).
//
//   - GET and HEAD (a GET link is valid for both) serve the object with
//     http.ServeContent: Range, If-Range, 206, HEAD, and sendfile.
//   - PUT stores the body if it is exactly the signed size and SHA-256.
//
// Responses carry Cache-Control: private, no-store (a link is a bearer
// credential; nothing it returns should outlive it in a shared cache),
// Referrer-Policy: no-referrer and X-Content-Type-Options: nosniff. Errors
// are JSON {"error":{"code","message"}}: 400 invalid (malformed link or
// body), 403 signature_invalid (tampered, other key, other method, unknown
// key ID), 403 link_expired, 404 not_found, 405, 411. Any Authorization
// header is ignored. Signatures are never logged or echoed.
func (s *Store) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// link is a parsed, verified /blobs/ request.
type link struct {
	key      string
	filename string
	size     int64
	sum      []byte
}

func (s *Store) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "private, no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")

	var method string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		method = http.MethodGet
	case http.MethodPut:
		method = http.MethodPut
	default:
		h.Set("Allow", "GET, HEAD, PUT")
		writeError(w, http.StatusMethodNotAllowed, portal.EInvalid, "method not allowed")
		return
	}
	l, status, err := s.verify(r, method)
	if err != nil {
		writeError(w, status, portal.ErrorCode(err), portal.ErrorMessage(err))
		return
	}
	if method == http.MethodGet {
		s.serveGet(w, r, l)
	} else {
		s.servePut(w, r, l)
	}
}

// verify parses and checks the link; on failure it returns the status and
// a *portal.Error safe to show. Order: malformed (400), then signature (403
// signature_invalid), then expiry (403 link_expired), so a tampered expired
// link reports tampering.
func (s *Store) verify(r *http.Request, method string) (link, int, error) {
	key, ok := strings.CutPrefix(r.URL.Path, "/blobs/")
	if !ok {
		return link{}, http.StatusNotFound, portal.Errorf(portal.ENotFound, "not found")
	}
	if err := objects.CheckKey(key); err != nil {
		return link{}, http.StatusBadRequest, portal.Errorf(portal.EInvalid, "malformed link: %s", portal.ErrorMessage(err))
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return link{}, http.StatusBadRequest, portal.Errorf(portal.EInvalid, "malformed link: bad query")
	}
	for name, vs := range q {
		if len(vs) > 1 {
			return link{}, http.StatusBadRequest, portal.Errorf(portal.EInvalid, "malformed link: parameter %q repeated", name)
		}
	}
	bad := func(what string) (link, int, error) {
		return link{}, http.StatusBadRequest, portal.Errorf(portal.EInvalid, "malformed link: %s", what)
	}
	expStr, kid, sigStr := q.Get(qExpires), q.Get(qKeyID), q.Get(qSig)
	sizeStr, sumStr, filename := q.Get(qSize), q.Get(qSHA256), q.Get(qFilename)
	exp, ok := parseUint(expStr)
	if !ok {
		return bad("expiry")
	}
	if kid == "" || len(kid) > 32 {
		return bad("key ID")
	}
	// Strict: the unused bits of the last character must be zero, so
	// each signature has one spelling and an edited one is refused.
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sigStr)
	if err != nil || len(sig) != 32 {
		return bad("signature")
	}
	var l link
	l.key = key
	if sizeStr != "" {
		if l.size, ok = parseUint(sizeStr); !ok {
			return bad("size")
		}
	}
	if sumStr != "" {
		if l.sum, ok = parseSHA256(sumStr); !ok {
			return bad("SHA-256")
		}
	}
	if filename != "" {
		if err := objects.CheckFilename(filename); err != nil {
			return bad("filename")
		}
		l.filename = filename
	}

	forbidden := func(code, msg string) (link, int, error) {
		return link{}, http.StatusForbidden, portal.Errorf(code, "%s", msg)
	}
	k, found := s.keys.Lookup(kid)
	if !found {
		return forbidden(portal.ESignatureInvalid, "link signature is invalid")
	}
	want := sign(k, method, expStr, key, sizeStr, sumStr, filename)
	if len(want) != len(sig) || !hmac.Equal(want, sig) {
		return forbidden(portal.ESignatureInvalid, "link signature is invalid")
	}
	if time.Now().Unix() >= exp {
		return forbidden(portal.ELinkExpired, "link expired")
	}
	// A verified link was minted by this portal, which always sets these.
	if method == http.MethodGet && l.filename == "" ||
		method == http.MethodPut && (sizeStr == "" || l.sum == nil) {
		return bad("incomplete")
	}
	return l, 0, nil
}

// parseUint accepts only the canonical decimal form of a non-negative int64
// (no sign, no leading zeros, no overflow).
func parseUint(s string) (int64, bool) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

func (s *Store) serveGet(w http.ResponseWriter, r *http.Request, l link) {
	f, fi, err := s.openObject(l.key)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", objects.ContentDisposition(l.filename))
	http.ServeContent(&jsonErrors{ResponseWriter: w}, r, "", fi.ModTime(), f)
}

func (s *Store) servePut(w http.ResponseWriter, r *http.Request, l link) {
	if r.ContentLength < 0 {
		writeError(w, http.StatusLengthRequired, portal.EInvalid, "Content-Length is required")
		return
	}
	if r.ContentLength != l.size {
		writeError(w, http.StatusBadRequest, portal.EInvalid,
			"Content-Length "+strconv.FormatInt(r.ContentLength, 10)+" differs from the link's size "+strconv.FormatInt(l.size, 10))
		return
	}
	if vs := r.Header.Values("X-Amz-Checksum-Sha256"); len(vs) > 0 {
		got, err := base64.StdEncoding.DecodeString(vs[0])
		if len(vs) > 1 || err != nil || !bytes.Equal(got, l.sum) {
			writeError(w, http.StatusBadRequest, portal.EInvalid, "x-amz-checksum-sha256 differs from the link's SHA-256")
			return
		}
	}
	if err := s.put(l.key, r.Body, l.size, l.sum); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"size": l.size, "sha256": hex.EncodeToString(l.sum)})
}

// writeErr maps a store error to a response; internal errors are logged
// (with the key and method, never the query) and answered generically.
func (s *Store) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	code := portal.ErrorCode(err)
	var status int
	switch code {
	case portal.ENotFound:
		status = http.StatusNotFound
	case portal.EInvalid:
		status = http.StatusBadRequest
	case portal.EConflict:
		status = http.StatusConflict
	default:
		s.log.Error("blobs: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, portal.EInternal, "internal error")
		return
	}
	writeError(w, status, code, portal.ErrorMessage(err))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Del("Content-Disposition")
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	json.NewEncoder(w).Encode(map[string]body{"error": {Code: code, Message: msg}})
}

// jsonErrors turns the plain-text errors http.ServeContent writes (416, 412)
// into the portal's JSON errors, and passes everything else through,
// including ReadFrom so the sendfile path survives.
type jsonErrors struct {
	http.ResponseWriter
	failed bool
}

func (w *jsonErrors) WriteHeader(status int) {
	if status < 400 || w.failed {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.failed = true
	code, msg := portal.EInvalid, http.StatusText(status)
	if status == http.StatusPreconditionFailed {
		code = portal.EConflict
	}
	writeError(w.ResponseWriter, status, code, strings.ToLower(msg))
}

func (w *jsonErrors) Write(p []byte) (int, error) {
	if w.failed {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *jsonErrors) ReadFrom(r io.Reader) (int64, error) {
	if w.failed {
		return io.Copy(io.Discard, r)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *jsonErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }
