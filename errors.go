// Package portal holds what every layer of the portal shares: the error type
// whose codes the HTTP layer maps to statuses in one place, and small shared
// types. It imports nothing of HTTP, storage or cloud SDKs.
package portal

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. The generic codes map to HTTP statuses in one place (the
// server package); the refusal codes are the precise reasons a customer is
// given when a download or update is refused.
const (
	ENotFound      = "not_found"
	EInvalid       = "invalid"
	EConflict      = "conflict"
	EUnauthorized  = "unauthorized"
	EForbidden     = "forbidden"
	ERateLimited   = "rate_limited"
	EInternal      = "internal"
	ETooLarge      = "too_large"
	EUnprocessable = "unprocessable"
	ETimeout       = "request_timeout" // 408: the client stopped sending its request

	// Refusal reasons (403 unless noted).
	ELicenseExpired   = "license_expired"
	ELicenseSuspended = "license_suspended"
	ELicenseRevoked   = "license_revoked"
	ENotEntitled      = "not_entitled"
	EQuotaExceeded    = "quota_exceeded" // 403, with Retry-After
	ELinkExpired      = "link_expired"
	ELinkRevoked      = "link_revoked"
	ESignatureInvalid = "signature_invalid"
)

// Error is the portal's one error type. Code is machine-readable and decides
// the HTTP status; Message is safe to show to the caller. Internal errors keep
// their cause in Err, which is logged but never sent to a client.
type Error struct {
	Code    string
	Message string
	// Details, when set, is sent to the client as extra fields of the error
	// object (for example expected versus actual hashes, or a reset time).
	Details map[string]any
	// RetryAt, when set, is when a refusal that is only temporary ends (a
	// daily quota's reset, a rate limit); HTTP sends it as Retry-After.
	RetryAt time.Time
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	}
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err: the message of the
// first *Error in its chain, or a generic text for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code string) bool { return ErrorCode(err) == code }
