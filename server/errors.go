package server

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
)

// statusOf is the one map from error codes to HTTP statuses.
var statusOf = map[string]int{
	portal.ENotFound:         http.StatusNotFound,
	portal.EInvalid:          http.StatusBadRequest,
	portal.EConflict:         http.StatusConflict,
	portal.EUnauthorized:     http.StatusUnauthorized,
	portal.EForbidden:        http.StatusForbidden,
	portal.ERateLimited:      http.StatusTooManyRequests,
	portal.ETooLarge:         http.StatusRequestEntityTooLarge,
	portal.EUnprocessable:    http.StatusUnprocessableEntity,
	portal.ETimeout:          http.StatusRequestTimeout,
	portal.EInternal:         http.StatusInternalServerError,
	portal.ELicenseExpired:   http.StatusForbidden,
	portal.ELicenseSuspended: http.StatusForbidden,
	portal.ELicenseRevoked:   http.StatusForbidden,
	portal.ENotEntitled:      http.StatusForbidden,
	portal.EQuotaExceeded:    http.StatusForbidden,
	portal.ELinkExpired:      http.StatusForbidden,
	portal.ELinkRevoked:      http.StatusForbidden,
	portal.ESignatureInvalid: http.StatusForbidden,
}

// StatusOf returns the HTTP status for an error code.
func StatusOf(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// fail writes err as the error envelope and stops the handler chain.
// Internal errors are logged with their cause and sent as a generic message.
func (s *Server) fail(c *gin.Context, err error) {
	code := portal.ErrorCode(err)
	status := StatusOf(code)
	if s.metrics != nil {
		s.metrics.refusals.WithLabelValues(code).Inc()
	}
	body := gin.H{"code": code, "message": portal.ErrorMessage(err)}
	var e *portal.Error
	if errors.As(err, &e) {
		for k, v := range e.Details {
			if k != "code" && k != "message" {
				body[k] = v
			}
		}
		if !e.RetryAt.IsZero() {
			c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(e.RetryAt.Sub(s.now()).Seconds())))))
		}
	}
	if status >= 500 {
		s.log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		body = gin.H{"code": portal.EInternal, "message": "internal error"}
	} else if code == portal.EUnauthorized {
		// Never Basic or Digest: electron-updater would then wait for an
		// app login handler.
		c.Header("WWW-Authenticate", `License realm="portal"`)
	}
	c.Abort()
	c.PureJSON(status, gin.H{"error": body})
}

func (s *Server) logger() *slog.Logger { return s.log }
