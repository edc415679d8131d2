package secret_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/portaldist/portal/secret"
)

const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"

func TestNewFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := secret.New("lic")
		rest, ok := strings.CutPrefix(s, "lic_")
		if !ok {
			t.Fatalf("%q lacks the prefix", s)
		}
		// 160 random bits in base32: 32 characters, no padding.
		if len(rest) != 32 {
			t.Fatalf("%q: %d random characters, want 32", s, len(rest))
		}
		for _, c := range rest {
			if !strings.ContainsRune(alphabet, c) {
				t.Fatalf("%q holds %q, outside the unambiguous alphabet", s, c)
			}
		}
		if seen[s] {
			t.Fatalf("%q generated twice", s)
		}
		seen[s] = true
		if !secret.WellFormed(s, "lic") {
			t.Fatalf("WellFormed(%q) = false", s)
		}
	}
	// Every alphabet character shows up: the encoding is not stuck.
	all := strings.Join(func() []string {
		var ks []string
		for k := range seen {
			ks = append(ks, k[4:])
		}
		return ks
	}(), "")
	for _, c := range alphabet {
		if !strings.ContainsRune(all, c) {
			t.Errorf("character %q never generated in 32000", c)
		}
	}
}

func TestWellFormed(t *testing.T) {
	good := secret.New("ptk")
	rest := good[4:]
	tests := []struct {
		s, prefix string
		want      bool
	}{
		{good, "ptk", true},
		{good, "lic", false},
		{good, "pt", false},
		{good, "", false},
		{"ptk_" + strings.Repeat("a", 32), "ptk", true},
		{"ptk_" + strings.Repeat("9", 32), "ptk", true},
		{"", "ptk", false},
		{"ptk_", "ptk", false},
		{"ptk" + rest, "ptk", false},
		{"ptk-" + rest, "ptk", false},
		{"ptk_" + rest[:31], "ptk", false},
		{"ptk_" + rest + "a", "ptk", false},
		{"ptk_" + strings.ToUpper(rest), "ptk", false},
		{"ptk_" + strings.Repeat("l", 32), "ptk", false}, // not in the alphabet
		{"ptk_" + strings.Repeat("o", 32), "ptk", false},
		{"ptk_" + strings.Repeat("1", 32), "ptk", false},
		{"ptk_" + strings.Repeat("0", 32), "ptk", false},
		{"ptk_" + rest[:31] + "=", "ptk", false},
		{"ptk_" + rest[:31] + "\x00", "ptk", false},
		{" ptk_" + rest, "ptk", false},
		{"PTK_" + rest, "ptk", false},
		{"ptk_ptk_" + rest, "ptk", false},
	}
	for _, tt := range tests {
		if got := secret.WellFormed(tt.s, tt.prefix); got != tt.want {
			t.Errorf("WellFormed(%q, %q) = %v, want %v", tt.s, tt.prefix, got, tt.want)
		}
	}
}

func TestHint(t *testing.T) {
	s := secret.New("lic")
	tests := []struct{ in, want string }{
		{s, s[:8]},
		{"lic_abcdefgh", "lic_abcd"},
		{"ptk_abcd", "ptk_abcd"},
		{"ptk_abc", "ptk_abc"}, // too short for a hint after the prefix: whole (it is no secret)
		{"noprefixsecret", "noprefix"},
		{"short", "short"},
		{"", ""},
		{"a_" + strings.Repeat("z", 40), "a_zzzz"},
	}
	for _, tt := range tests {
		if got := secret.Hint(tt.in); got != tt.want {
			t.Errorf("Hint(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The hint gives away 20 of 160 bits at most.
	if h := secret.Hint(s); len(h)-len("lic_") > 4 {
		t.Errorf("hint %q reveals %d random characters", h, len(h)-4)
	}
}

func TestDigest(t *testing.T) {
	s := secret.New("lic")
	d := secret.Digest(s)
	sum := sha256.Sum256([]byte(s))
	if d != hex.EncodeToString(sum[:]) {
		t.Errorf("Digest is not the hex SHA-256")
	}
	if len(d) != 64 || strings.ToLower(d) != d {
		t.Errorf("Digest %q is not 64 lower-case hex digits", d)
	}
	if secret.Digest(s) != d {
		t.Error("Digest is not deterministic")
	}
	if secret.Digest(s+"a") == d || secret.Digest(secret.New("lic")) == d {
		t.Error("different secrets share a digest")
	}
	if strings.Contains(d, s[4:]) {
		t.Error("digest contains the secret")
	}
}

func TestEqual(t *testing.T) {
	a := secret.Digest("x")
	b := secret.Digest("y")
	tests := []struct {
		a, b string
		want bool
	}{
		{a, a, true},
		{a, strings.Clone(a), true},
		{"", "", true},
		{a, b, false},
		{a, a[:63], false},
		{a[:63], a, false},
		{a, a + "0", false},
		{a, "", false},
		{"", a, false},
		{a, strings.ToUpper(a), a == strings.ToUpper(a)},
		{a[:63] + "x", a, false},
	}
	for _, tt := range tests {
		if got := secret.Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%.10q..., %.10q...) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
