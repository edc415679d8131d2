package local

import (
	"strings"
	"testing"
)

// A configured plain secret may hold ':' (or a ',' or a space): ParseKeyring
// then reads its first part as a key ID. Whatever goes wrong next, the error
// must not quote that part: configs.Validate prints these messages as they
// are, relying on them never quoting the secret.
func TestKeyringErrorsNeverQuoteSecretText(t *testing.T) {
	const frag = "Hunter2Frag"
	for _, text := range []string{
		"p@ss" + frag + ":" + strings.Repeat("x", 40), // invalid ID
		frag + ":short",                        // valid ID, short secret
		frag + " x:" + strings.Repeat("y", 40), // ID with a space
		frag + ":" + strings.Repeat("y", 20) + " " + strings.Repeat("z", 20),              // whitespace in secret
		frag + ":" + strings.Repeat("y", 40) + "," + frag + ":" + strings.Repeat("z", 40), // same ID twice
		strings.Repeat(frag, 4) + ":" + strings.Repeat("y", 40),                           // ID too long
	} {
		_, err := ParseKeyring(text)
		if err == nil {
			t.Errorf("ParseKeyring(%q) accepted", text)
			continue
		}
		if strings.Contains(err.Error(), frag) {
			t.Errorf("ParseKeyring error quotes secret text: %v", err)
		}
	}
}
