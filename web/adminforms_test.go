package web

import (
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
)

func TestLicenseForms(t *testing.T) {
	day := time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)
	noon := time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		form  url.Values
		want  licenses.License
		field string // the field of the error, "" when none
	}{
		{
			name: "every field",
			form: url.Values{"customer": {"  Acme Corp "}, "product": {"app", "tool"}, "constraint": {">= 2.0, < 3.0"},
				"channel": {"stable", "beta"}, "platforms": {"linux, darwin windows"}, "expires_at": {"2027-01-31"},
				"on_expiry": {"maintain"}, "downloads_per_day": {"10"}, "metadata": {"crm = 4711\r\n\r\norder=A=1\r\n"}},
			want: licenses.License{Customer: "Acme Corp", Products: []string{"app", "tool"}, Constraint: ">= 2.0, < 3.0",
				Channels: []string{"stable", "beta"}, Platforms: []string{"linux", "darwin", "windows"}, ExpiresAt: &day,
				OnExpiry: "maintain", DownloadsPerDay: 10, Metadata: map[string]string{"crm": "4711", "order": "A=1"}},
		},
		{
			name: "RFC 3339 expiry in another zone",
			form: url.Values{"customer": {"A"}, "product": {"app"}, "expires_at": {"2027-01-31T13:00:00+01:00"}},
			want: licenses.License{Customer: "A", Products: []string{"app"}, ExpiresAt: &noon},
		},
		{name: "no product", form: url.Values{"customer": {"A"}}, field: "products"},
		{name: "bad date", form: url.Values{"customer": {"A"}, "product": {"app"}, "expires_at": {"31/01/2027"}}, field: "expires_at"},
		{name: "bad number", form: url.Values{"customer": {"A"}, "product": {"app"}, "downloads_per_day": {"ten"}}, field: "downloads_per_day"},
		{name: "metadata line without =", form: url.Values{"customer": {"A"}, "product": {"app"}, "metadata": {"crm=1\nnote"}}, field: "metadata"},
		{name: "metadata key twice", form: url.Values{"customer": {"A"}, "product": {"app"}, "metadata": {"crm=1\ncrm=2"}}, field: "metadata"},
		{name: "metadata without key", form: url.Values{"customer": {"A"}, "product": {"app"}, "metadata": {"=1"}}, field: "metadata"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := newLicenseFromForm(c.form)
			checkField(t, err, c.field)
			if c.field == "" && !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
			p, err := licensePatchFromForm(c.form)
			checkField(t, err, c.field)
			if c.field == "" {
				if !p.SetExpiry || !reflect.DeepEqual(p.ExpiresAt, c.want.ExpiresAt) || *p.Customer != c.want.Customer ||
					!reflect.DeepEqual(*p.Products, c.want.Products) || *p.DownloadsPerDay != c.want.DownloadsPerDay ||
					p.Metadata == nil || !reflect.DeepEqual(*p.Metadata, c.want.Metadata) {
					t.Fatalf("patch %+v does not match %+v", p, c.want)
				}
			}
		})
	}
}

func checkField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	var pe *portal.Error
	if portal.ErrorCode(err) != portal.EInvalid || !asError(err, &pe) || pe.Details["field"] != field {
		t.Fatalf("error %v, want invalid naming %s", err, field)
	}
}

func asError(err error, pe **portal.Error) bool {
	e, ok := err.(*portal.Error)
	*pe = e
	return ok
}

// TestMetadataText: the form shows metadata as key=value lines in key
// order, which read back as the same map.
func TestMetadataText(t *testing.T) {
	m := map[string]string{"b": "2", "a": "x=y", "c": ""}
	text := metadataText(m)
	if text != "a=x=y\nb=2\nc=\n" {
		t.Fatalf("text %q", text)
	}
	got, err := formMetadata(url.Values{"metadata": {text}}, "metadata")
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("read back %v %v", got, err)
	}
}

func TestRenewForm(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	past, future := now.AddDate(0, -1, 0), now.AddDate(0, 3, 0)
	for _, c := range []struct {
		expires *time.Time
		want    string
	}{{nil, "2027-12-02"}, {&past, "2027-12-02"}, {&future, "2028-03-02"}} {
		if got := renewDefault(licenses.License{ExpiresAt: c.expires}, now); got != c.want {
			t.Errorf("renewDefault(%v) = %s, want %s", c.expires, got, c.want)
		}
	}
	p, err := renewPatchFromForm(url.Values{"expires_at": {"2028-03-02"}})
	if err != nil || !p.SetExpiry || p.ExpiresAt.Format(time.DateOnly) != "2028-03-02" || p.Customer != nil {
		t.Fatalf("%+v %v", p, err)
	}
	_, err = renewPatchFromForm(url.Values{})
	checkField(t, err, "expires_at")
}

func TestAuditFilterForm(t *testing.T) {
	f, err := auditFilterFromQuery(url.Values{"actor": {"admin"}, "action": {"license"}, "target": {"license/"},
		"since": {"2026-12-01"}, "until": {"2026-12-02T10:30"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Actor != "admin" || f.Action != "license" || f.TargetPrefix != "license/" || f.Limit != auditPageSize ||
		!f.Since.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || !f.Until.Equal(time.Date(2026, 12, 2, 10, 30, 0, 0, time.UTC)) {
		t.Fatalf("%+v", f)
	}
	for _, q := range []url.Values{
		{"since": {"yesterday"}},
		{"since": {"2026-12-02"}, "until": {"2026-12-01"}},
		{"cursor": {"!!"}},
	} {
		if _, err := auditFilterFromQuery(q); portal.ErrorCode(err) != portal.EInvalid {
			t.Errorf("%v: %v, want invalid", q, err)
		}
	}
}

func TestTokenForm(t *testing.T) {
	nt, err := newTokenFromForm(url.Values{"name": {" ci "}, "role": {"publisher"}, "products": {"app, tool"}, "expires_at": {"2027-01-01"}})
	if err != nil || nt.Name != "ci" || nt.Role != "publisher" || !reflect.DeepEqual(nt.Products, []string{"app", "tool"}) || nt.ExpiresAt.Year() != 2027 {
		t.Fatalf("%+v %v", nt, err)
	}
	if _, err := newTokenFromForm(url.Values{"expires_at": {"soon"}}); portal.ErrorCode(err) != portal.EInvalid {
		t.Fatalf("bad expiry: %v", err)
	}
}
