// Package licenses keeps customer licenses and decides, in one function,
// whether a license may have a release at a given time and, when not, why.
package licenses

import (
	"fmt"
	"slices"
	"strings"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

// License status.
const (
	Active    = "active"
	Suspended = "suspended" // reversible: reinstate brings it back
	Revoked   = "revoked"   // final
)

// What happens at expires_at.
const (
	OnExpiryRevoke   = "revoke"   // all access ends
	OnExpiryMaintain = "maintain" // releases published before expiry stay available
)

// KeyPrefix starts every license key.
const KeyPrefix = "lic"

// Computed status (StatusAt): an active license past its expires_at.
const Expired = "expired"

// MaxProducts is the most products one license may cover.
const MaxProducts = 100

// License is one customer's right to one or more products.
type License struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	// Products are the products the license covers (at least one).
	Products []string `json:"products"`
	// Product is the one-product shorthand: accepted on create and read
	// from licenses stored before Products existed. Validate and the
	// service's reads move it into Products and clear it, so it is never
	// written or shown. Decide honours it only while Products is empty
	// (a License built in code that was never validated).
	Product string `json:"product,omitempty"`
	// Constraint limits versions (go-version syntax, ">= 2.0, < 3.0").
	Constraint string `json:"constraint,omitempty"`
	// Channels the license may use; empty means every channel.
	Channels []string `json:"channels,omitempty"`
	// Platforms the license may download for; empty means every platform.
	Platforms       []string   `json:"platforms,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	OnExpiry        string     `json:"on_expiry"`
	DownloadsPerDay int        `json:"downloads_per_day,omitempty"`
	Status          string     `json:"status"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	// KeyHint is the prefix of the key (lic_abcd), for telling keys apart.
	KeyHint string `json:"key_hint"`
	// KeyDigest is the SHA-256 of the key; the key itself is never stored.
	KeyDigest string `json:"key_digest,omitempty"`
	// Metadata is the vendor's own data (a CRM id, an order number),
	// limited like release metadata.
	Metadata map[string]string `json:"metadata,omitempty"`

	constraint version.Constraints
}

// Public returns l without server-only fields.
func (l License) Public() License {
	l.KeyDigest = ""
	return l
}

// StatusAt is the license's status as shown: revoked or suspended as
// stored, else expired once now reaches expires_at (whatever on_expiry
// says: a maintained license keeps older releases but is expired), else
// active.
func (l *License) StatusAt(now time.Time) string {
	switch l.Status {
	case Revoked, Suspended:
		return l.Status
	}
	if l.ExpiresAt != nil && !now.Before(*l.ExpiresAt) {
		return Expired
	}
	return Active
}

// View is a license as every answer shows it: without server-only fields,
// and with status computed at the time of the answer (StatusAt).
type View struct {
	License
	// Status shadows License.Status in JSON.
	Status string `json:"status"`
}

// ViewAt returns l's view at now.
func (l License) ViewAt(now time.Time) View {
	return View{License: l.Public(), Status: l.StatusAt(now)}
}

// Covers reports whether the license is for product. It allocates nothing.
func (l *License) Covers(product string) bool {
	if len(l.Products) == 0 {
		return l.Product != "" && l.Product == product
	}
	for _, p := range l.Products {
		if p == product {
			return true
		}
	}
	return false
}

// ProductList returns the products the license covers (Products, or the
// one-product shorthand when Products is empty). Read it, never modify it.
func (l *License) ProductList() []string {
	if len(l.Products) == 0 && l.Product != "" {
		return []string{l.Product}
	}
	return l.Products
}

// normalize moves the one-product shorthand into Products: licenses stored
// with "product" are read as "products": [product].
func (l *License) normalize() {
	if len(l.Products) == 0 && l.Product != "" {
		l.Products = []string{l.Product}
	}
	l.Product = ""
}

// Target is what a license asks for: a release (and, when known, the
// artifact's platform).
type Target struct {
	Product     string
	Version     string
	Channel     string
	Status      string
	PublishedAt *time.Time
	Platform    string // "" when no artifact is chosen yet
	// Parsed is Version already parsed, when the caller has it (the update
	// index keeps every version parsed); nil makes Decide parse Version.
	Parsed *version.Version
}

// TargetOf returns the target for release r (and an artifact's platform).
func TargetOf(r releases.Release, platform string) Target {
	return Target{Product: r.Product, Version: r.Version, Channel: r.Channel, Status: r.Status, PublishedAt: r.PublishedAt, Platform: platform}
}

// refusal is why a license refuses a target; permitted is none.
type refusal uint8

const (
	permitted refusal = iota
	refusedRevoked
	refusedSuspended
	refusedProduct
	refusedUnavailable
	refusedExpired
	refusedExpiredAfter // maintained license, release published after expiry
	refusedBadConstraint
	refusedBadVersion
	refusedVersion
	refusedChannel
	refusedPlatform
)

// judge is the one entitlement rule. It allocates nothing, so the update
// index can ask it about every release it walks; Decide turns its verdict
// into the error a caller is shown.
func (l *License) judge(t Target, now time.Time) refusal {
	switch l.Status {
	case Revoked:
		return refusedRevoked
	case Suspended:
		return refusedSuspended
	}
	if !l.Covers(t.Product) {
		return refusedProduct
	}
	if t.Status != "" && t.Status != releases.Published {
		return refusedUnavailable
	}
	if l.ExpiresAt != nil && !now.Before(*l.ExpiresAt) {
		if l.OnExpiry != OnExpiryMaintain {
			return refusedExpired
		}
		if t.PublishedAt == nil || !t.PublishedAt.Before(*l.ExpiresAt) {
			return refusedExpiredAfter
		}
	}
	if l.Constraint != "" {
		cs, err := l.constraints()
		if err != nil {
			return refusedBadConstraint
		}
		v := t.Parsed
		if v == nil {
			if v, err = releases.ParseVersion(t.Version); err != nil {
				return refusedBadVersion
			}
		}
		if !cs.Check(v) {
			return refusedVersion
		}
	}
	if len(l.Channels) > 0 && t.Channel != "" && !slices.Contains(l.Channels, t.Channel) {
		return refusedChannel
	}
	if len(l.Platforms) > 0 && t.Platform != "" && t.Platform != "any" && !slices.Contains(l.Platforms, t.Platform) {
		return refusedPlatform
	}
	return permitted
}

// Decide answers "may license l have target t at time now". It returns nil
// when it may, and otherwise a *portal.Error whose code is the precise
// reason: license_revoked, license_suspended, license_expired or
// not_entitled (with a message naming the rule). Download quotas are counted
// elsewhere (they need the ledger) and are not part of this decision.
//
// Decide allocates only to explain a refusal. The artifact matters only
// through its platform, and only when LimitsPlatforms is true: callers
// choosing among a release's artifacts ask once with Platform "" and then
// per artifact only for such licenses.
func (l *License) Decide(t Target, now time.Time) error {
	switch l.judge(t, now) {
	case permitted:
		return nil
	case refusedRevoked:
		return portal.Errorf(portal.ELicenseRevoked, "this license was revoked")
	case refusedSuspended:
		return portal.Errorf(portal.ELicenseSuspended, "this license is suspended")
	case refusedProduct:
		return portal.Errorf(portal.ENotEntitled, "this license is for %s, not %s", strings.Join(l.ProductList(), ", "), t.Product)
	case refusedUnavailable:
		return portal.Errorf(portal.ENotFound, "%s %s is not available", t.Product, t.Version)
	case refusedExpired:
		return portal.Errorf(portal.ELicenseExpired, "this license expired at %s", l.ExpiresAt.UTC().Format(time.RFC3339))
	case refusedExpiredAfter:
		return portal.Errorf(portal.ELicenseExpired, "this license expired at %s; it keeps releases published before then, and %s was not", l.ExpiresAt.UTC().Format(time.RFC3339), t.Version)
	case refusedBadConstraint:
		_, err := l.constraints()
		return err
	case refusedBadVersion:
		_, err := releases.ParseVersion(t.Version)
		return err
	case refusedVersion:
		return portal.Errorf(portal.ENotEntitled, "this license covers versions %s, not %s", l.Constraint, t.Version)
	case refusedChannel:
		return portal.Errorf(portal.ENotEntitled, "this license covers the %s channels, not %s", strings.Join(l.Channels, ", "), t.Channel)
	default: // refusedPlatform
		return portal.Errorf(portal.ENotEntitled, "this license covers %s, not %s", strings.Join(l.Platforms, ", "), t.Platform)
	}
}

// Permits is Decide without the explanation: whether l may have t at now.
// It allocates nothing.
func (l *License) Permits(t Target, now time.Time) bool { return l.judge(t, now) == permitted }

// LimitsPlatforms reports whether Decide depends on the target's platform:
// the license names platforms. Platform-neutral ("any") artifacts are
// always permitted.
func (l *License) LimitsPlatforms() bool { return len(l.Platforms) > 0 }

// RefusesAll returns the refusal that holds for every release of product:
// the license is revoked, suspended, expired without a perpetual fallback
// (on_expiry revoke), or for another product. It returns nil when some
// release may still be allowed; Decide then judges each one. Callers that
// walk many releases check this once first, so a dead license is refused
// with its own reason rather than answered with "nothing fits".
func (l *License) RefusesAll(product string, now time.Time) error {
	// judge checks these before anything about the target, so a target
	// with only the product yields exactly that refusal.
	t := Target{Product: product}
	switch l.judge(t, now) {
	case refusedRevoked, refusedSuspended, refusedProduct, refusedExpired:
		return l.Decide(t, now)
	}
	return nil
}

// Standing says what the license gives at now, for showing to its holder:
// "ok"; "maintained" (expired with on_expiry maintain: it keeps the
// releases published before expires_at); or the code of the refusal that
// holds for every release of every product it covers (license_revoked,
// license_suspended, license_expired). None of these depends on the
// product, so its first product stands for all.
func (l *License) Standing(now time.Time) string {
	var first string
	if ps := l.ProductList(); len(ps) > 0 {
		first = ps[0]
	}
	if err := l.RefusesAll(first, now); err != nil {
		return portal.ErrorCode(err)
	}
	if l.ExpiresAt != nil && !now.Before(*l.ExpiresAt) {
		return "maintained"
	}
	return "ok"
}

// prime parses the constraint once, so copies of l share it and Decide on
// them writes nothing (cached licenses are read by many goroutines).
func (l *License) prime() {
	if l.Constraint != "" && l.constraint == nil {
		l.constraints()
	}
}

func (l *License) constraints() (version.Constraints, error) {
	if l.constraint == nil {
		cs, err := ParseConstraint(l.Constraint)
		if err != nil {
			return nil, err
		}
		l.constraint = cs
	}
	return l.constraint, nil
}

// ParseConstraint parses a go-version constraint such as ">= 2.0, < 3.0".
func ParseConstraint(s string) (version.Constraints, error) {
	if len(s) > 256 {
		return nil, portal.Errorf(portal.EInvalid, "constraint is longer than 256 bytes")
	}
	cs, err := version.NewConstraint(s)
	if err != nil {
		return nil, portal.Errorf(portal.EInvalid, "invalid constraint %q: use go-version syntax such as \">= 2.0, < 3.0\"", s)
	}
	return cs, nil
}

// Validate checks and normalizes a license's declared fields.
func (l *License) Validate() error {
	if err := releases.ValidateText("customer", l.Customer, 200, false); err != nil {
		return err
	}
	if strings.TrimSpace(l.Customer) == "" {
		return portal.Errorf(portal.EInvalid, "customer is required")
	}
	if err := l.validateProducts(); err != nil {
		return err
	}
	if l.Constraint != "" {
		cs, err := ParseConstraint(l.Constraint)
		if err != nil {
			return err
		}
		l.constraint = cs
	}
	if len(l.Channels) > 5 {
		return portal.Errorf(portal.EInvalid, "channels: at most 5")
	}
	if len(l.Platforms) > 8 {
		return portal.Errorf(portal.EInvalid, "platforms: at most 8")
	}
	for i, ch := range l.Channels {
		c, err := releases.ParseChannel(ch)
		if err != nil || ch == "" {
			return portal.Errorf(portal.EInvalid, "unknown channel %q in channels", ch)
		}
		l.Channels[i] = c
	}
	for i, p := range l.Platforms {
		c, err := releases.ParsePlatform(p)
		if err != nil {
			return portal.Errorf(portal.EInvalid, "platforms: %s", portal.ErrorMessage(err))
		}
		l.Platforms[i] = c
	}
	switch l.OnExpiry {
	case "":
		l.OnExpiry = OnExpiryRevoke
	case OnExpiryRevoke, OnExpiryMaintain:
	default:
		return portal.Errorf(portal.EInvalid, "on_expiry must be %q or %q", OnExpiryRevoke, OnExpiryMaintain)
	}
	if l.DownloadsPerDay < 0 || l.DownloadsPerDay > 1_000_000 {
		return portal.Errorf(portal.EInvalid, "downloads_per_day must be from 0 (unlimited) to 1000000")
	}
	if l.ExpiresAt != nil {
		t := l.ExpiresAt.UTC()
		l.ExpiresAt = &t
	}
	if err := releases.ValidateMetadata(l.Metadata); err != nil {
		return err
	}
	if len(l.Metadata) == 0 {
		l.Metadata = nil
	}
	return nil
}

// validateProducts checks the products and moves the one-product form into
// Products. Both may be given only when they agree.
func (l *License) validateProducts() error {
	if l.Product != "" && len(l.Products) > 0 && !(len(l.Products) == 1 && l.Products[0] == l.Product) {
		return portal.Errorf(portal.EInvalid, "give products, or product for one product, not both")
	}
	l.normalize()
	if len(l.Products) == 0 {
		return portal.Errorf(portal.EInvalid, "products is required: the products the license covers")
	}
	if len(l.Products) > MaxProducts {
		return portal.Errorf(portal.EInvalid, "products: at most %d", MaxProducts)
	}
	seen := make(map[string]bool, len(l.Products))
	out := l.Products[:0:0]
	for _, p := range l.Products {
		if err := releases.ValidateSlug(p); err != nil {
			return portal.Errorf(portal.EInvalid, "products: %s", portal.ErrorMessage(err))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	l.Products = out
	return nil
}

func (l License) String() string { return fmt.Sprintf("license %s (%s)", l.ID, l.KeyHint) }
