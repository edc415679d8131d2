package audit_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
)

func TestParseFilter(t *testing.T) {
	got, err := audit.ParseFilter(url.Values{
		"actor": {"license:L1"}, "action": {"license.suspend"}, "target": {"license/"},
		"since": {"2026-03-01T12:00:00Z"}, "until": {"2026-03-02T00:00:00.5+01:00"}, "limit": {"50"},
		"other": {"left to the caller"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Filter{Actor: "license:L1", Action: "license.suspend", TargetPrefix: "license/",
		Since: t0, Until: time.Date(2026, 3, 1, 23, 0, 0, 5e8, time.UTC), Limit: 50}
	if !got.Since.Equal(want.Since) || !got.Until.Equal(want.Until) {
		t.Errorf("times %v %v, want %v %v", got.Since, got.Until, want.Since, want.Until)
	}
	got.Since, got.Until, want.Since, want.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if f, err := audit.ParseFilter(url.Values{}); err != nil || f != (audit.Filter{}) {
		t.Errorf("no parameters: %+v, %v", f, err)
	}
}

func TestFilterRefusals(t *testing.T) {
	db, _ := newDB(t)
	log := audit.New(db)
	cases := []struct {
		name  string
		q     url.Values
		field string
	}{
		{"malformed since", url.Values{"since": {"yesterday"}}, "since"},
		{"date without time", url.Values{"since": {"2026-03-01"}}, "since"},
		{"malformed until", url.Values{"until": {"2026-13-01T00:00:00Z"}}, "until"},
		{"empty time", url.Values{"until": {""}}, "until"},
		{"until before since", url.Values{"since": {"2026-03-02T00:00:00Z"}, "until": {"2026-03-01T00:00:00Z"}}, "until"},
		{"until equal to since", url.Values{"since": {"2026-03-02T00:00:00Z"}, "until": {"2026-03-02T00:00:00Z"}}, "until"},
		{"limit 0", url.Values{"limit": {"0"}}, "limit"},
		{"limit 1001", url.Values{"limit": {"1001"}}, "limit"},
		{"negative limit", url.Values{"limit": {"-1"}}, "limit"},
		{"limit not a number", url.Values{"limit": {"ten"}}, "limit"},
		{"huge limit", url.Values{"limit": {"99999999999999999999999"}}, "limit"},
		{"cursor not base64", url.Values{"cursor": {"!!"}}, "cursor"},
		{"cursor of another length", url.Values{"cursor": {"AAAA"}}, "cursor"},
		{"cursor with padding", url.Values{"cursor": {"AAAAAAAAAAAAAAAAAAAAAA=="}}, "cursor"},
		{"repeated action", url.Values{"action": {"a.b", "c.d"}}, "action"},
		{"long target", url.Values{"target": {strings.Repeat("t", 1000)}}, "target"},
		{"long actor", url.Values{"actor": {strings.Repeat("a", 1000)}}, "actor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := audit.ParseFilter(c.q)
			checkInvalid(t, err, c.field)
			if f != (audit.Filter{}) {
				t.Errorf("a filter with the error: %+v", f)
			}
		})
	}
	for name, f := range map[string]struct {
		f     audit.Filter
		field string
	}{
		"limit":  {audit.Filter{Limit: 1001}, "limit"},
		"cursor": {audit.Filter{Cursor: "nope"}, "cursor"},
		"range":  {audit.Filter{Since: t0, Until: t0}, "until"},
		"target": {audit.Filter{TargetPrefix: strings.Repeat("t", 1000)}, "target"},
	} {
		t.Run("List "+name, func(t *testing.T) {
			recs, next, err := log.List(context.Background(), f.f)
			checkInvalid(t, err, f.field)
			if recs != nil || next != "" {
				t.Errorf("records %v cursor %q with an error", recs, next)
			}
		})
	}
}

func checkInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Code != portal.EInvalid {
		t.Fatalf("err = %v, want *portal.Error %s", err, portal.EInvalid)
	}
	if pe.Details["field"] != field || !strings.Contains(pe.Message, field) {
		t.Errorf("error %q (details %v) does not name %s", pe.Message, pe.Details, field)
	}
}
