package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

const redacted = "[redacted]"

// secretNames are member names (normalized to snake case) whose values are
// secrets or derived from them; secretSuffixes extend them to compound
// names (api_token, webhook_secret, sha_digest...).
var (
	secretNames = map[string]bool{
		"key": true, "keys": true, "key_digest": true, "digest": true,
		"token": true, "tokens": true, "secret": true, "secrets": true,
		"signature": true, "signatures": true, "sig": true,
		"signing_key": true, "signing_keys": true, "private_key": true, "seed": true,
		"password": true, "passphrase": true, "credentials": true,
		"authorization": true, "cookie": true, "csrf": true,
		"api_key": true, "access_key": true, "secret_key": true, "master_key": true,
	}
	secretSuffixes = []string{
		"_key_digest", "_digest", "_token", "_tokens", "_secret", "_secrets",
		"_signature", "_signatures", "_signing_key", "_private_key", "_seed",
		"_password", "_passphrase", "_api_key", "_access_key", "_secret_key", "_master_key",
	}
)

// secretName reports whether a JSON member named name holds a secret.
func secretName(name string) bool {
	n := snake(name)
	if secretNames[n] {
		return true
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// snake normalizes KeyDigest, keyDigest, key-digest and KEY_DIGEST to
// key_digest.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case r == '-' || r == ' ' || r == '.':
			b.WriteByte('_')
		case unicode.IsUpper(r):
			if i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) ||
				(i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// secretValue matches strings that hold a secret, wherever it sits in them:
// a portal key or token (the secret package's prefix, underscore and 32
// characters of its alphabet), a signed URL's signature or credential
// parameter, a whole Bearer or Basic Authorization value, a private key
// block. Ordinary text is left alone ("Basic auth is supported").
var secretValue = regexp.MustCompile(`(?i)` + strings.Join([]string{
	`(lic|ptk)_[abcdefghijkmnpqrstuvwxyz23456789]{32}`,
	`[?&](sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|token|key)=`,
	`^\s*(bearer|basic)\s+[a-z0-9._~+/=-]+\s*$`,
	`-----BEGIN [A-Z0-9 ]*PRIVATE KEY`,
	`minisign (encrypted )?secret key`,
}, "|"))

func secretLike(s string) bool { return secretValue.MatchString(s) }

// scrub encodes v as JSON and removes what must never be recorded. nil (and
// a JSON null) give nil.
func scrub(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, nil
	}
	out, err := json.Marshal(clean1(doc))
	if err != nil {
		return nil, fmt.Errorf("re-encode: %w", err)
	}
	return out, nil
}

// clean1 returns v without secrets: members with secret names (and map
// keys that hold a secret) dropped, secret-looking strings redacted.
func clean1(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if secretName(k) || secretLike(k) {
				delete(v, k)
				continue
			}
			v[k] = clean1(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = clean1(e)
		}
		return v
	case string:
		if secretLike(v) {
			return redacted
		}
		return v
	}
	return v // numbers, booleans, null
}

// changed keeps, when before and after are both JSON objects, only the
// members whose values differ (a member missing on one side differs).
// Anything else is returned as is.
func changed(before, after json.RawMessage) (json.RawMessage, json.RawMessage) {
	var b, a map[string]json.RawMessage
	if json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil || b == nil || a == nil {
		return before, after
	}
	for k, bv := range b {
		if av, ok := a[k]; ok && bytes.Equal(bv, av) {
			delete(a, k)
			delete(b, k)
		}
	}
	// Both maps held valid JSON members a moment ago; re-encoding them
	// cannot fail.
	nb, _ := json.Marshal(b)
	na, _ := json.Marshal(a)
	return nb, na
}

// bound replaces a side larger than MaxSideBytes with a note of its size.
func bound(raw json.RawMessage) json.RawMessage {
	if len(raw) <= MaxSideBytes {
		return raw
	}
	return json.RawMessage(fmt.Sprintf(`{"truncated":true,"bytes":%d}`, len(raw)))
}
