package web

import "testing"

// The auth.conf line names the repository the way apt_auth.conf(5)
// matches it: without a scheme for https (such a line matches https
// only), with http:// over plain http; open products need none.
func TestAPTInstructionsMachine(t *testing.T) {
	for _, tc := range []struct {
		base string
		open bool
		auth string
		line string
	}{
		{"https://portal.example", false, "machine portal.example/apt/acme login license password YOUR_LICENSE_KEY",
			"deb [signed-by=/etc/apt/keyrings/acme.gpg] https://portal.example/apt/acme stable main"},
		{"https://portal.example:8443/dist", false, "machine portal.example:8443/dist/apt/acme login license password YOUR_LICENSE_KEY",
			"deb [signed-by=/etc/apt/keyrings/acme.gpg] https://portal.example:8443/dist/apt/acme stable main"},
		{"http://127.0.0.1:8080", false, "machine http://127.0.0.1:8080/apt/acme login license password YOUR_LICENSE_KEY",
			"deb [signed-by=/etc/apt/keyrings/acme.gpg] http://127.0.0.1:8080/apt/acme stable main"},
		{"https://portal.example", true, "", "deb [signed-by=/etc/apt/keyrings/acme.gpg] https://portal.example/apt/acme stable main"},
	} {
		a := aptInstructions(tc.base, "acme", []string{"stable"}, []string{"acme-server"}, tc.open)
		if a.Auth != tc.auth || (a.AuthFile != "") != !tc.open || len(a.Lines) != 1 || a.Lines[0] != tc.line {
			t.Errorf("%s open=%v: auth %q in %q, lines %q; want %q, %q", tc.base, tc.open, a.Auth, a.AuthFile, a.Lines, tc.auth, tc.line)
		}
		if a.KeyURL != tc.base+"/apt/acme/key.gpg" {
			t.Errorf("%s: key URL %s", tc.base, a.KeyURL)
		}
	}
}

func TestGroupFingerprint(t *testing.T) {
	for in, want := range map[string]string{
		"":       "",
		"ABCD":   "ABCD",
		"ABCDEF": "ABCD EF",
		"DB7DE199BA9C931832BC4953EDE451979716D324": "DB7D E199 BA9C 9318 32BC 4953 EDE4 5197 9716 D324",
	} {
		if got := groupFingerprint(in); got != want {
			t.Errorf("groupFingerprint(%q) = %q, want %q", in, got, want)
		}
	}
}
