package links_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/store/bolt"
)

// FuzzTokenMutation: Verify never panics, verifies no token but the one Create
// returned, and refuses every mutation of that token (a byte changed,
// inserted or deleted) with signature_invalid, link_expired or
// link_revoked, never an internal error.
//
// Each input is an arbitrary token plus one edit (op, position, byte)
// applied to a real token minted on a real bbolt store.
func FuzzTokenMutation(f *testing.F) {
	db, err := bolt.Open(filepath.Join(f.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	svc, err := links.New(db, secret, nil)
	if err != nil {
		f.Fatal(err)
	}
	fx := fixture{db: db, svc: svc}
	ctx := actorCtx()
	l, valid, err := fx.svc.Create(ctx, sample("0123456789abcdef"), time.Hour, links.MaxTTL)
	if err != nil {
		f.Fatal(err)
	}
	// A second live link: its token must not open the first one's record,
	// nor the reverse.
	_, other, err := fx.svc.Create(ctx, sample("fedcba9876543210"), time.Hour, links.MaxTTL)
	if err != nil {
		f.Fatal(err)
	}
	if got, err := fx.svc.Verify(ctx, valid); err != nil || got.ID != l.ID {
		f.Fatalf("the minted token does not verify: %v", err)
	}
	for _, s := range []string{
		"", ".", "..", valid[:16] + "..", "0123456789abcdef.1.", "0123456789ABCDEF.1740000000." + valid[len(valid)-43:],
		"0123456789abcdef.01740000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"0123456789abcdef.99999999999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"0123456789abcdef.-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"0123456789abcdef.1740000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
		"0123456789abcdef.1740000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"0123456789abcdef.1740000000.+/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"\x00\xff.\u202e.x",
	} {
		f.Add(s, uint8(0), uint16(0), byte('A'))
	}
	f.Add("", uint8(0), uint16(len(valid)-1), byte('B')) // last tag character
	f.Add("", uint8(1), uint16(17), byte('1'))           // digit inserted into the expiry
	f.Add("", uint8(2), uint16(0), byte(0))              // first ID digit deleted
	f.Add("", uint8(0), uint16(16), byte('_'))           // separator replaced

	check := func(t *testing.T, token string) {
		got, err := fx.svc.Verify(ctx, token)
		switch {
		case token == valid:
			if err != nil || got.ID != l.ID {
				t.Fatalf("the minted token stopped verifying: %v", err)
			}
		case token == other:
		case err == nil:
			t.Fatalf("Verify(%q) accepted a token that was never minted (link %s)", token, got.ID)
		default:
			switch portal.ErrorCode(err) {
			case portal.ESignatureInvalid, portal.ELinkExpired, portal.ELinkRevoked:
			default:
				t.Fatalf("Verify(%q): %v (code %q), want a refusal", token, err, portal.ErrorCode(err))
			}
		}
	}
	f.Fuzz(func(t *testing.T, token string, op uint8, pos uint16, b byte) {
		check(t, token)
		mut := []byte(valid)
		i := int(pos) % (len(mut) + 1)
		switch op % 3 {
		case 0: // replace
			if i == len(mut) {
				i--
			}
			if mut[i] == b {
				return
			}
			mut[i] = b
		case 1: // insert
			mut = append(mut[:i], append([]byte{b}, mut[i:]...)...)
		case 2: // delete
			if i == len(mut) {
				i--
			}
			mut = append(mut[:i], mut[i+1:]...)
		}
		m := string(mut)
		if m == valid {
			return
		}
		if _, err := fx.svc.Verify(ctx, m); err == nil {
			t.Fatalf("a mutated token verified: %q (from %q)", m, valid)
		}
		check(t, m)
	})
}
