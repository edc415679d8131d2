package web

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/tokens"
)

// This file reads the admin console's forms into the domain services'
// inputs. It only converts text (dates, numbers, lists): every rule about
// the values (what a customer name, a constraint or a channel may be) is
// checked by the service the value goes to, so a form and the API refuse
// the same things with the same messages.

// formError is a refusal of a form value the services never see (a number
// or a date that does not parse), named like the API's field errors.
func formError(field, format string, args ...any) error {
	e := portal.Errorf(portal.EInvalid, format, args...)
	e.Details = map[string]any{"field": field}
	return e
}

// formTime reads a time field: a UTC date (2027-01-31, meaning its start,
// 00:00 UTC) or an RFC 3339 time; "" is nil.
func formTime(f url.Values, field string) (*time.Time, error) {
	v := strings.TrimSpace(f.Get(field))
	if v == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return &t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, formError(field, "%s must be a date such as 2027-01-31 (UTC) or an RFC 3339 time such as 2027-01-31T12:00:00Z", field)
	}
	t = t.UTC()
	return &t, nil
}

// formInt reads a whole number field; "" is 0.
func formInt(f url.Values, field string) (int, error) {
	v := strings.TrimSpace(f.Get(field))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, formError(field, "%s must be a whole number", field)
	}
	return n, nil
}

// formList reads a field given as repeated values (check boxes) or as one
// text of comma- or space-separated words, or both; empty words are
// dropped.
func formList(f url.Values, field string) []string {
	var out []string
	for _, v := range f[field] {
		for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
			out = append(out, w)
		}
	}
	return out
}

// licenseFields are the fields of the license create and edit forms.
type licenseFields struct {
	Customer        string
	Products        []string
	Constraint      string
	Channels        []string
	Platforms       []string
	ExpiresAt       *time.Time
	OnExpiry        string
	DownloadsPerDay int
	Metadata        map[string]string
}

func readLicenseForm(f url.Values) (licenseFields, error) {
	var lf licenseFields
	var err error
	lf.Customer = strings.TrimSpace(f.Get("customer"))
	lf.Products = formList(f, "product")
	lf.Constraint = strings.TrimSpace(f.Get("constraint"))
	lf.Channels = formList(f, "channel")
	lf.Platforms = formList(f, "platforms")
	lf.OnExpiry = f.Get("on_expiry")
	if lf.ExpiresAt, err = formTime(f, "expires_at"); err != nil {
		return lf, err
	}
	if lf.DownloadsPerDay, err = formInt(f, "downloads_per_day"); err != nil {
		return lf, err
	}
	if lf.Metadata, err = formMetadata(f, "metadata"); err != nil {
		return lf, err
	}
	if len(lf.Metadata) == 0 {
		lf.Metadata = nil // none, as a license without metadata is stored
	}
	return lf, nil
}

// newLicenseFromForm is the license the create form asks for
// (licenses.Service.Create validates it).
func newLicenseFromForm(f url.Values) (licenses.License, error) {
	lf, err := readLicenseForm(f)
	if err != nil {
		return licenses.License{}, err
	}
	if len(lf.Products) == 0 {
		return licenses.License{}, formError("products", "choose at least one product")
	}
	return licenses.License{
		Customer: lf.Customer, Products: lf.Products, Constraint: lf.Constraint, Channels: lf.Channels,
		Platforms: lf.Platforms, ExpiresAt: lf.ExpiresAt, OnExpiry: lf.OnExpiry, DownloadsPerDay: lf.DownloadsPerDay,
		Metadata: lf.Metadata,
	}, nil
}

// licensePatchFromForm is the edit the edit form asks for. The form shows
// every field, so every field is set: a cleared field clears the value
// (an empty expiry means the license never expires, empty metadata
// removes it).
func licensePatchFromForm(f url.Values) (licenses.Patch, error) {
	lf, err := readLicenseForm(f)
	if err != nil {
		return licenses.Patch{}, err
	}
	if len(lf.Products) == 0 {
		return licenses.Patch{}, formError("products", "choose at least one product")
	}
	return licenses.Patch{
		Customer: &lf.Customer, Products: &lf.Products, Constraint: &lf.Constraint, Channels: &lf.Channels,
		Platforms: &lf.Platforms, OnExpiry: &lf.OnExpiry, DownloadsPerDay: &lf.DownloadsPerDay,
		SetExpiry: true, ExpiresAt: lf.ExpiresAt, Metadata: &lf.Metadata, // nil: an empty map, none
	}, nil
}

// renewPatchFromForm is a renewal: a new expiry, required.
func renewPatchFromForm(f url.Values) (licenses.Patch, error) {
	t, err := formTime(f, "expires_at")
	if err != nil {
		return licenses.Patch{}, err
	}
	if t == nil {
		return licenses.Patch{}, formError("expires_at", "expires_at: give the new expiry, such as 2027-01-31")
	}
	return licenses.Patch{SetExpiry: true, ExpiresAt: t}, nil
}

// renewDefault is the expiry the renew form proposes: a year after the
// current expiry, or after now when it has passed or there is none.
func renewDefault(l licenses.License, now time.Time) string {
	from := now.UTC()
	if l.ExpiresAt != nil && l.ExpiresAt.After(from) {
		from = l.ExpiresAt.UTC()
	}
	return from.AddDate(1, 0, 0).Format(time.DateOnly)
}

// newTokenFromForm is the token the create form asks for
// (tokens.Service.CreateWith validates it).
func newTokenFromForm(f url.Values) (tokens.NewToken, error) {
	nt := tokens.NewToken{Name: strings.TrimSpace(f.Get("name")), Role: f.Get("role"), Products: formList(f, "products")}
	t, err := formTime(f, "expires_at")
	if err != nil {
		return nt, err
	}
	if t != nil {
		nt.ExpiresAt = *t
	}
	return nt, nil
}

// formText reads a multi-line text field as it was typed: browsers send a
// textarea's line breaks as CRLF, which would otherwise make every line a
// byte longer each time the text is saved (and a text near its limit
// unsavable once opened and saved unchanged).
func formText(v string) string { return strings.ReplaceAll(v, "\r\n", "\n") }

// formMetadata reads a metadata field: one key=value a line (the value
// may hold "="; spaces around each are dropped; blank lines are skipped).
// An empty text is an empty map, which removes the metadata.
func formMetadata(f url.Values, field string) (map[string]string, error) {
	m := map[string]string{}
	for i, line := range strings.Split(formText(f.Get(field)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, formError(field, "%s: line %d is not key=value", field, i+1)
		}
		if _, dup := m[k]; dup {
			return nil, formError(field, "%s: the key %q is given twice", field, truncate(k, 64))
		}
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}

// metadataText is metadata as its form field shows it: key=value lines
// in key order.
func metadataText(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + m[k] + "\n")
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// rolloutFromForm reads the rollout percentage (releases.ValidateRollout
// decides what is allowed).
func rolloutFromForm(f url.Values) (int, error) {
	if strings.TrimSpace(f.Get("rollout")) == "" {
		return 0, formError("rollout", "rollout: give a percentage from 1 to 100")
	}
	return formInt(f, "rollout")
}

// auditFilterFromQuery reads the audit page's filter. since and until may
// be dates (2026-12-01, its start in UTC) or datetime-local values
// (2026-12-01T10:00, UTC) besides RFC 3339; audit.ParseFilter checks the
// rest, as for GET /v1/audit.
func auditFilterFromQuery(q url.Values) (audit.Filter, error) {
	in := url.Values{}
	for _, name := range []string{"actor", "action", "target", "since", "until", "cursor"} {
		v := strings.TrimSpace(q.Get(name))
		if v == "" {
			continue
		}
		if name == "since" || name == "until" {
			if t, err := time.Parse(time.DateOnly, v); err == nil {
				v = t.Format(time.RFC3339)
			} else if t, err := time.Parse("2006-01-02T15:04", v); err == nil {
				v = t.Format(time.RFC3339)
			}
		}
		in.Set(name, v)
	}
	in.Set("limit", strconv.Itoa(auditPageSize))
	return audit.ParseFilter(in)
}

// auditPageSize is the records of one audit page.
const auditPageSize = 50
