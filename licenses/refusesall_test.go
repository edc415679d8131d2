package licenses_test

import (
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
)

func TestRefusesAll(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	past := now.Add(-time.Hour)
	cases := []struct {
		name string
		l    licenses.License
		want string
	}{
		{"active", licenses.License{Product: "app", Status: licenses.Active, Constraint: "< 2.0"}, ""},
		{"suspended", licenses.License{Product: "app", Status: licenses.Suspended}, portal.ELicenseSuspended},
		{"revoked", licenses.License{Product: "app", Status: licenses.Revoked}, portal.ELicenseRevoked},
		{"expired, revoke", licenses.License{Product: "app", Status: licenses.Active, ExpiresAt: &past, OnExpiry: licenses.OnExpiryRevoke}, portal.ELicenseExpired},
		{"expired, maintain", licenses.License{Product: "app", Status: licenses.Active, ExpiresAt: &past, OnExpiry: licenses.OnExpiryMaintain}, ""},
		{"other product", licenses.License{Product: "other", Status: licenses.Active}, portal.ENotEntitled},
	}
	for _, c := range cases {
		if got := portal.ErrorCode(c.l.RefusesAll("app", now)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
