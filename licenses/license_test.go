package licenses_test

import (
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
)

var (
	t0      = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	expiry  = t0.Add(30 * 24 * time.Hour)
	before  = expiry.Add(-time.Hour)
	after   = expiry.Add(time.Hour)
	farPast = t0.Add(-365 * 24 * time.Hour)
)

func ptr[T any](v T) *T { return &v }

func TestDecide(t *testing.T) {
	base := func() licenses.License {
		return licenses.License{
			ID: "l1", Customer: "ACME", Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryRevoke,
		}
	}
	target := func() licenses.Target {
		return licenses.Target{Product: "app", Version: "2.1.0", Channel: "stable", Status: releases.Published, PublishedAt: ptr(t0), Platform: "linux"}
	}
	tests := []struct {
		name string
		lic  func(*licenses.License)
		tgt  func(*licenses.Target)
		now  time.Time
		code string // "" = allowed
	}{
		{name: "plain license, published release", now: t0},
		{name: "revoked", lic: func(l *licenses.License) { l.Status = licenses.Revoked }, now: t0, code: portal.ELicenseRevoked},
		{name: "suspended", lic: func(l *licenses.License) { l.Status = licenses.Suspended }, now: t0, code: portal.ELicenseSuspended},
		{name: "revoked beats other product", lic: func(l *licenses.License) { l.Status = licenses.Revoked }, tgt: func(g *licenses.Target) { g.Product = "other" }, now: t0, code: portal.ELicenseRevoked},
		{name: "suspended beats expiry", lic: func(l *licenses.License) { l.Status = licenses.Suspended; l.ExpiresAt = ptr(expiry) }, now: after, code: portal.ELicenseSuspended},
		{name: "other product", tgt: func(g *licenses.Target) { g.Product = "other" }, now: t0, code: portal.ENotEntitled},
		{name: "product prefix is another product", tgt: func(g *licenses.Target) { g.Product = "app-pro" }, now: t0, code: portal.ENotEntitled},
		{name: "draft release", tgt: func(g *licenses.Target) { g.Status = releases.Draft; g.PublishedAt = nil }, now: t0, code: portal.ENotFound},
		{name: "yanked release", tgt: func(g *licenses.Target) { g.Status = releases.Yanked }, now: t0, code: portal.ENotFound},

		{name: "inside constraint", lic: func(l *licenses.License) { l.Constraint = ">= 2.0, < 3.0" }, now: t0},
		{name: "constraint lower bound", lic: func(l *licenses.License) { l.Constraint = ">= 2.0, < 3.0" }, tgt: func(g *licenses.Target) { g.Version = "2.0.0" }, now: t0},
		{name: "constraint v-spelling", lic: func(l *licenses.License) { l.Constraint = ">= 2.0, < 3.0" }, tgt: func(g *licenses.Target) { g.Version = "v2.9.9+build" }, now: t0},
		{name: "below constraint", lic: func(l *licenses.License) { l.Constraint = ">= 2.0, < 3.0" }, tgt: func(g *licenses.Target) { g.Version = "1.9.9" }, now: t0, code: portal.ENotEntitled},
		{name: "at constraint upper bound", lic: func(l *licenses.License) { l.Constraint = ">= 2.0, < 3.0" }, tgt: func(g *licenses.Target) { g.Version = "3.0.0" }, now: t0, code: portal.ENotEntitled},
		{name: "above constraint", lic: func(l *licenses.License) { l.Constraint = ">= 2.0, < 3.0" }, tgt: func(g *licenses.Target) { g.Version = "10.0.0" }, now: t0, code: portal.ENotEntitled},
		{name: "pessimistic constraint", lic: func(l *licenses.License) { l.Constraint = "~> 2.1" }, tgt: func(g *licenses.Target) { g.Version = "2.9.0" }, now: t0},
		{name: "pessimistic constraint above", lic: func(l *licenses.License) { l.Constraint = "~> 2.1" }, tgt: func(g *licenses.Target) { g.Version = "3.0.0" }, now: t0, code: portal.ENotEntitled},
		// go-version: a constraint without a prerelease never matches a
		// prerelease version, so a constrained license gets no prereleases.
		{name: "prerelease under plain constraint", lic: func(l *licenses.License) { l.Constraint = ">= 2.0, < 3.0" }, tgt: func(g *licenses.Target) { g.Version = "2.5.0-beta.1"; g.Channel = "beta" }, now: t0, code: portal.ENotEntitled},

		{name: "channel in license channels", lic: func(l *licenses.License) { l.Channels = []string{"stable", "beta"} }, tgt: func(g *licenses.Target) { g.Channel = "beta" }, now: t0},
		{name: "channel not in license channels", lic: func(l *licenses.License) { l.Channels = []string{"stable"} }, tgt: func(g *licenses.Target) { g.Channel = "beta" }, now: t0, code: portal.ENotEntitled},
		{name: "channel list is not a visibility rank", lic: func(l *licenses.License) { l.Channels = []string{"dev"} }, tgt: func(g *licenses.Target) { g.Channel = "stable" }, now: t0, code: portal.ENotEntitled},
		{name: "no channels means every channel", tgt: func(g *licenses.Target) { g.Channel = "dev" }, now: t0},
		{name: "target without channel", lic: func(l *licenses.License) { l.Channels = []string{"stable"} }, tgt: func(g *licenses.Target) { g.Channel = "" }, now: t0},

		{name: "platform in license platforms", lic: func(l *licenses.License) { l.Platforms = []string{"linux", "darwin"} }, now: t0},
		{name: "platform not in license platforms", lic: func(l *licenses.License) { l.Platforms = []string{"windows"} }, now: t0, code: portal.ENotEntitled},
		{name: "platform-neutral artifact", lic: func(l *licenses.License) { l.Platforms = []string{"windows"} }, tgt: func(g *licenses.Target) { g.Platform = "any" }, now: t0},
		{name: "no artifact chosen yet", lic: func(l *licenses.License) { l.Platforms = []string{"windows"} }, tgt: func(g *licenses.Target) { g.Platform = "" }, now: t0},

		{name: "before expiry", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry) }, now: before},
		{name: "expiry, revoke", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry) }, now: after, code: portal.ELicenseExpired},
		{name: "at the expiry instant, revoke", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry) }, now: expiry, code: portal.ELicenseExpired},
		{name: "expiry, empty on_expiry means revoke", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry); l.OnExpiry = "" }, now: after, code: portal.ELicenseExpired},
		{name: "expiry, revoke, old release", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry) }, tgt: func(g *licenses.Target) { g.PublishedAt = ptr(farPast) }, now: after, code: portal.ELicenseExpired},
		{name: "maintain, release published before expiry", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry); l.OnExpiry = licenses.OnExpiryMaintain }, tgt: func(g *licenses.Target) { g.PublishedAt = ptr(before) }, now: after},
		{name: "maintain, release published after expiry", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry); l.OnExpiry = licenses.OnExpiryMaintain }, tgt: func(g *licenses.Target) { g.PublishedAt = ptr(after) }, now: after.Add(time.Hour), code: portal.ELicenseExpired},
		{name: "maintain, release published at the expiry instant", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry); l.OnExpiry = licenses.OnExpiryMaintain }, tgt: func(g *licenses.Target) { g.PublishedAt = ptr(expiry) }, now: after, code: portal.ELicenseExpired},
		{name: "maintain, unpublished time", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry); l.OnExpiry = licenses.OnExpiryMaintain }, tgt: func(g *licenses.Target) { g.PublishedAt = nil; g.Status = "" }, now: after, code: portal.ELicenseExpired},
		{name: "maintain, before expiry, new release", lic: func(l *licenses.License) { l.ExpiresAt = ptr(expiry); l.OnExpiry = licenses.OnExpiryMaintain }, tgt: func(g *licenses.Target) { g.PublishedAt = ptr(before) }, now: before},
		{name: "maintain still applies the constraint", lic: func(l *licenses.License) {
			l.ExpiresAt = ptr(expiry)
			l.OnExpiry = licenses.OnExpiryMaintain
			l.Constraint = "< 2.0"
		}, tgt: func(g *licenses.Target) { g.PublishedAt = ptr(before) }, now: after, code: portal.ENotEntitled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, g := base(), target()
			if tt.lic != nil {
				tt.lic(&l)
			}
			if tt.tgt != nil {
				tt.tgt(&g)
			}
			err := l.Decide(g, tt.now)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Decide refused: %v", err)
				}
				return
			}
			if got := portal.ErrorCode(err); got != tt.code {
				t.Fatalf("Decide = %v (code %q), want %q", err, got, tt.code)
			}
			if portal.ErrorMessage(err) == "" || portal.ErrorMessage(err) == "internal error" {
				t.Errorf("refusal has no reason: %q", portal.ErrorMessage(err))
			}
		})
	}
}

func TestDecideTargetOf(t *testing.T) {
	r := releases.Release{Product: "app", Version: "1.2.3", Channel: "beta", Status: releases.Published, PublishedAt: ptr(t0)}
	g := licenses.TargetOf(r, "darwin")
	want := licenses.Target{Product: "app", Version: "1.2.3", Channel: "beta", Status: releases.Published, PublishedAt: r.PublishedAt, Platform: "darwin"}
	if g != want {
		t.Errorf("TargetOf = %+v, want %+v", g, want)
	}
	l := licenses.License{Product: "app", Status: licenses.Active, Channels: []string{"stable"}}
	if portal.ErrorCode(l.Decide(g, t0)) != portal.ENotEntitled {
		t.Error("a stable-only license may have a beta release")
	}
}

func TestValidate(t *testing.T) {
	valid := func() licenses.License {
		return licenses.License{Customer: "ACME Corp", Product: "app"}
	}
	bad := []struct {
		name string
		mod  func(*licenses.License)
	}{
		{"bad constraint", func(l *licenses.License) { l.Constraint = ">= two" }},
		{"constraint garbage", func(l *licenses.License) { l.Constraint = "2.0 <" }},
		{"constraint too long", func(l *licenses.License) { l.Constraint = ">= 1.0" + strings.Repeat(", >= 1.0", 40) }},
		{"unknown channel", func(l *licenses.License) { l.Channels = []string{"stable", "nightly"} }},
		{"empty channel", func(l *licenses.License) { l.Channels = []string{""} }},
		{"channel case", func(l *licenses.License) { l.Channels = []string{"Beta"} }},
		{"too many channels", func(l *licenses.License) { l.Channels = []string{"stable", "rc", "beta", "alpha", "dev", "stable"} }},
		{"unknown platform", func(l *licenses.License) { l.Platforms = []string{"beos"} }},
		{"bad on_expiry", func(l *licenses.License) { l.OnExpiry = "keep" }},
		{"on_expiry case", func(l *licenses.License) { l.OnExpiry = "Revoke" }},
		{"negative quota", func(l *licenses.License) { l.DownloadsPerDay = -1 }},
		{"huge quota", func(l *licenses.License) { l.DownloadsPerDay = 1_000_001 }},
		{"no customer", func(l *licenses.License) { l.Customer = "" }},
		{"blank customer", func(l *licenses.License) { l.Customer = " \u00a0 " }},
		{"control char in customer", func(l *licenses.License) { l.Customer = "a\nb" }},
		{"long customer", func(l *licenses.License) { l.Customer = strings.Repeat("c", 201) }},
		{"no product", func(l *licenses.License) { l.Product = "" }},
		{"bad product", func(l *licenses.License) { l.Product = "../app" }},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			l := valid()
			tt.mod(&l)
			err := l.Validate()
			if got := portal.ErrorCode(err); got != portal.EInvalid {
				t.Fatalf("Validate = %v (code %q), want invalid", err, got)
			}
		})
	}

	l := valid()
	l.Constraint = ">= 2.0, < 3.0"
	l.Channels = []string{"stable", "beta"}
	l.Platforms = []string{"macos", "win64", "linux"}
	l.DownloadsPerDay = 1_000_000
	l.ExpiresAt = ptr(time.Date(2026, 1, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600)))
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	if l.OnExpiry != licenses.OnExpiryRevoke {
		t.Errorf("default on_expiry %q, want revoke", l.OnExpiry)
	}
	if strings.Join(l.Platforms, ",") != "darwin,windows,linux" {
		t.Errorf("platforms not normalized: %v", l.Platforms)
	}
	if l.ExpiresAt.Location() != time.UTC || !l.ExpiresAt.Equal(time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("expires_at not UTC: %v", l.ExpiresAt)
	}
	for _, oe := range []string{licenses.OnExpiryRevoke, licenses.OnExpiryMaintain} {
		l := valid()
		l.OnExpiry = oe
		if err := l.Validate(); err != nil || l.OnExpiry != oe {
			t.Errorf("on_expiry %q: %v, %q", oe, err, l.OnExpiry)
		}
	}
}

func TestParseConstraint(t *testing.T) {
	for _, s := range []string{">= 2.0, < 3.0", "~> 1.2", "= 1.0.0", "!= 1.5", "1.0", "> 1.0.0-rc.1"} {
		if _, err := licenses.ParseConstraint(s); err != nil {
			t.Errorf("ParseConstraint(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "abc", ">= ", ">> 1", strings.Repeat("1", 257)} {
		_, err := licenses.ParseConstraint(s)
		if portal.ErrorCode(err) != portal.EInvalid {
			t.Errorf("ParseConstraint(%.20q) = %v, want invalid", s, err)
		}
	}
}

func TestStanding(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	for _, tc := range []struct {
		name string
		mod  func(*licenses.License)
		want string
	}{
		{"active", func(*licenses.License) {}, "ok"},
		{"not yet expired", func(l *licenses.License) { l.ExpiresAt = &future }, "ok"},
		{"expired, maintain", func(l *licenses.License) { l.ExpiresAt = &past; l.OnExpiry = licenses.OnExpiryMaintain }, "maintained"},
		{"expired, revoke", func(l *licenses.License) { l.ExpiresAt = &past }, portal.ELicenseExpired},
		{"suspended", func(l *licenses.License) { l.Status = licenses.Suspended }, portal.ELicenseSuspended},
		{"revoked, expired", func(l *licenses.License) { l.Status = licenses.Revoked; l.ExpiresAt = &past }, portal.ELicenseRevoked},
	} {
		l := &licenses.License{ID: "l", Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryRevoke}
		tc.mod(l)
		if got := l.Standing(now); got != tc.want {
			t.Errorf("%s: Standing = %q, want %q", tc.name, got, tc.want)
		}
	}
}
