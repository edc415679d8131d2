package server

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/audit"
)

// RequestIDHeader carries the request id, in and out.
const RequestIDHeader = "X-Request-Id"

// maxRequestID is the longest incoming request id kept.
const maxRequestID = 64

// requestContext gives every request, authenticated or not, its request id
// and puts in its context what the audit log records of any change it
// makes (audit.WithRequest: the client address and the request id; and an
// anonymous actor, which authenticate replaces with the caller's). The id
// is the client's X-Request-Id when it is a sane one (1 to 64 letters,
// digits and "-_.:+=/@", nothing that looks like a secret), else a new
// random one; it is echoed in the X-Request-Id response header and logged
// by accessLog, so a request's log line and its audit records share it.
func (s *Server) requestContext(c *gin.Context) {
	id := c.GetHeader(RequestIDHeader)
	if !saneRequestID(id) {
		id = newRequestID()
	}
	c.Writer.Header()[RequestIDHeader] = []string{id} // already canonical
	ctx := audit.WithRequest(c.Request.Context(), c.ClientIP(), id)
	ctx = audit.WithActor(ctx, audit.Actor{Kind: audit.KindAnonymous})
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// requestID returns the request's id ("" before requestContext ran): the
// one echoed in the response header, already checked by saneRequestID.
func requestID(c *gin.Context) string {
	return c.Writer.Header().Get(RequestIDHeader)
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case b == '-' || b == '_' || b == '.' || b == ':' || b == '+' || b == '=' || b == '/' || b == '@':
		default:
			return false
		}
	}
	// The audit log's own rule: an id it would redact (a key, a token) is
	// never echoed or logged either.
	return audit.Clean(id) == id
}

func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
