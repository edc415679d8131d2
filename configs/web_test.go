package configs

import (
	"strings"
	"testing"
)

// TestWebKeys: the web.* keys load from the environment, and bad values
// are refused naming their key.
func TestWebKeys(t *testing.T) {
	cfg, err := Load(LoadOptions{Env: []string{
		"PORTAL_WEB_BRAND_NAME=Acme Studio", "PORTAL_WEB_ACCENT_COLOR=#8A2BE2",
		"PORTAL_WEB_LOGO_URL=https://cdn.example.com/logo.png", "PORTAL_WEB_SESSIONS_PER_SUBJECT=5",
	}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if w := cfg.Web; w.BrandName != "Acme Studio" || w.AccentColor != "#8A2BE2" || w.LogoURL != "https://cdn.example.com/logo.png" || w.SessionsPerSubject != 5 {
		t.Errorf("web = %+v", cfg.Web)
	}
	for _, tc := range []struct{ env, key string }{
		{"PORTAL_WEB_BRAND_NAME=" + strings.Repeat("n", 101), "web.brand_name"},
		{"PORTAL_WEB_BRAND_NAME=a\x1bb", "web.brand_name"},
		{"PORTAL_WEB_ACCENT_COLOR=red", "web.accent_color"},
		{"PORTAL_WEB_ACCENT_COLOR=#12345", "web.accent_color"},
		{"PORTAL_WEB_ACCENT_COLOR=#123;}body{x:y", "web.accent_color"},
		{"PORTAL_WEB_LOGO_URL=javascript:alert(1)", "web.logo_url"},
		{"PORTAL_WEB_LOGO_URL=/logo.png", "web.logo_url"},
		{"PORTAL_WEB_LOGO_URL=https://cdn.example.com/a'; script-src *", "web.logo_url"},
		{"PORTAL_WEB_LOGO_URL=https://u:p@cdn.example.com/l.png", "web.logo_url"},
		{"PORTAL_WEB_SESSIONS_PER_SUBJECT=0", "web.sessions_per_subject"},
		{"PORTAL_WEB_SESSIONS_PER_SUBJECT=51", "web.sessions_per_subject"},
	} {
		_, err := Load(LoadOptions{Env: []string{tc.env}})
		if err == nil || !strings.Contains(err.Error(), "configs: "+tc.key+":") {
			t.Errorf("%q: err = %v, want one naming %s", tc.env, err, tc.key)
		}
	}
	if _, err := Load(LoadOptions{Flags: map[string]string{"web.brand_name": ""}}); err == nil || !strings.Contains(err.Error(), "web.brand_name") {
		t.Errorf("an empty brand name: err = %v", err)
	}
}
