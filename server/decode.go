package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
)

// decode reads exactly one JSON object from the request body into v,
// refusing unknown fields, trailing data and bodies above the size limit.
func (s *Server) decode(c *gin.Context, v any) error {
	// The content type is not checked: the body is always JSON, and curl's
	// -d sends it labelled as a form.
	body := http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, s.opts.MaxBody)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err, s.opts.MaxBody)
		}
		return portal.Errorf(portal.EInvalid, "the body must hold one JSON object and nothing after it")
	}
	return nil
}

// limitBody refuses, with 413 and before anything of the body is read, a
// request whose Content-Length is over the JSON body limit: no 100 Continue
// is sent, and the connection is closed after the answer (the server lingers
// before closing, so a client still sending sees the answer rather than a
// reset). A chunked body over the limit is refused by decode once it has
// read past the limit. Uploads to /blobs/ are bounded by their signed size
// instead.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > s.opts.MaxBody && !strings.HasPrefix(c.FullPath(), "/blobs/") {
		c.Header("Connection", "close")
		s.fail(c, tooLarge(s.opts.MaxBody))
		return
	}
	c.Next()
}

func tooLarge(limit int64) error {
	return &portal.Error{Code: portal.ETooLarge, Message: "request body is too large", Details: map[string]any{"limit": limit}}
}

func jsonError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return tooLarge(limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's read deadline (limits.body_idle_timeout) passed
		// while the client sent nothing.
		return portal.Errorf(portal.ETimeout, "the request body stalled: send it without pauses")
	case errors.Is(err, io.EOF):
		return portal.Errorf(portal.EInvalid, "the request body is empty: send a JSON object")
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return portal.Errorf(portal.EInvalid, "malformed JSON in the request body")
	case errors.As(err, &typ):
		return portal.Errorf(portal.EInvalid, "field %q must be a JSON %s", typ.Field, typ.Type.Kind())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return portal.Errorf(portal.EInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return portal.Errorf(portal.EInvalid, "invalid JSON body")
}
