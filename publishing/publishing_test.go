package publishing

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/objectstest"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// verifyUploaded checks an uploaded artifact's digests and both signatures
// against data, with the product's public key.
func (e *env) verifyUploaded(a releases.Artifact, data []byte) {
	e.t.Helper()
	if a.Status != releases.Uploaded || a.UploadedAt == nil || a.Failure != "" || a.UploadID != "" {
		e.t.Fatalf("artifact %+v, want uploaded", a)
	}
	if a.SHA512 == "" {
		e.t.Fatal("no SHA-512")
	}
	d := signing.NewDigester(-1)
	d.Write(data)
	sum := d.Sum()
	if a.SHA512 != sum.SHA512Base64() {
		e.t.Fatalf("SHA512 %s, want %s", a.SHA512, sum.SHA512Base64())
	}
	if err := signing.VerifySparkle(e.key.Sparkle.PublicKey(), data, a.Signatures["ed25519"]); err != nil {
		e.t.Fatalf("Sparkle signature: %v", err)
	}
	b := blake2b.Sum512(data)
	tc, err := signing.VerifyMinisign(e.key.Minisign.MinisignPublicKey(), b[:], []byte(a.Signatures["minisign"]))
	if err != nil {
		e.t.Fatalf("minisign signature: %v", err)
	}
	if !strings.Contains(tc, "file:"+a.Filename) {
		e.t.Fatalf("trusted comment %q does not name %s", tc, a.Filename)
	}
}

func TestRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) {
		e := newEnv(t, objs, Options{})
		data := randomBytes(300 << 10)
		a, up := e.add("app-linux-amd64.tar.gz", data)
		if a.Status != releases.Waiting || a.UploadExpiresAt == nil {
			t.Fatalf("declared artifact %+v, want waiting with an upload expiry", a)
		}
		if up.Method != "PUT" || up.URL == "" || up.Headers["Content-Length"] != "307200" || up.Multipart {
			t.Fatalf("upload %+v, want a single bound PUT", up)
		}
		if d := time.Until(up.ExpiresAt); d < 50*time.Minute || d > time.Hour+time.Minute {
			t.Fatalf("upload expires in %v, want about the 1h default", d)
		}
		put(t, up, data, 0)

		got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		e.verifyUploaded(got, data)
		if stored := e.artifact(a.Filename); !reflect.DeepEqual(stored, got) {
			t.Fatalf("catalog holds %+v, Complete returned %+v", stored, got)
		}

		// The stored object is the file.
		rc, err := objs.Open(e.ctx, a.ObjectKey)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(back, data) {
			t.Fatal("stored object differs from the uploaded file")
		}

		// Completing again is harmless and reads nothing.
		again, err := e.svc.Complete(e.ctx, product, version, a.Filename)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("second Complete: %+v, %v; want the same artifact", again, err)
		}

		r, err := e.cat.Publish(e.ctx, product, version)
		if err != nil || r.Status != releases.Published {
			t.Fatalf("Publish: %+v, %v", r.Status, err)
		}

		// A published release takes no new artifacts, and no object is made.
		_, _, err = e.svc.AddArtifact(e.ctx, product, version, declaration("late.zip", 10, sha256Hex(make([]byte, 10))), "")
		portalError(t, err, portal.EConflict)
		if n := len(e.release().Artifacts); n != 1 {
			t.Fatalf("published release has %d artifacts, want 1", n)
		}
	})
}

func TestUploadJSON(t *testing.T) {
	single, _ := json.Marshal(Upload{Method: "PUT", URL: "u", Headers: map[string]string{"Content-Length": "1"}, ExpiresAt: time.Unix(0, 0).UTC()})
	if want := `{"method":"PUT","url":"u","headers":{"Content-Length":"1"},"expires_at":"1970-01-01T00:00:00Z"}`; string(single) != want {
		t.Errorf("single PUT JSON %s, want %s", single, want)
	}
	multi, _ := json.Marshal(Upload{Multipart: true, PartSize: 5, Parts: []objects.SignedRequest{{Method: "PUT", URL: "p1"}}, ExpiresAt: time.Unix(0, 0).UTC()})
	if want := `{"expires_at":"1970-01-01T00:00:00Z","multipart":true,"part_size":5,"parts":[{"method":"PUT","url":"p1","expires_at":"0001-01-01T00:00:00Z"}]}`; string(multi) != want {
		t.Errorf("multipart JSON %s, want %s", multi, want)
	}
}

// TestWrongBytes uploads bytes other than the declared ones, first through
// the minted URL (the store must refuse them) and then behind the store's
// back at the artifact's key (Complete must catch them).
func TestWrongBytes(t *testing.T) {
	data := randomBytes(64 << 10)
	cases := []struct {
		name  string
		wrong []byte
	}{
		{"same size, other bytes", randomBytes(len(data))},
		{"shorter", data[:len(data)-1]},
		{"longer", append(append([]byte{}, data...), 0)},
	}
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, objs, Options{})
				other, oup := e.add("other.zip", []byte("another file"))
				put(t, oup, []byte("another file"), 0)
				if _, err := e.svc.Complete(e.ctx, product, version, other.Filename); err != nil {
					t.Fatal(err)
				}
				a, up := e.add("app.zip", data)
				before := e.release()

				// Through the minted URL: refused, nothing stored.
				status, _, err := send(objects.SignedRequest{Method: up.Method, URL: up.URL, Headers: up.Headers}, bytes.NewReader(c.wrong), int64(len(c.wrong)))
				if err == nil && status/100 == 2 {
					t.Fatalf("store accepted wrong bytes (status %d)", status)
				}
				_, err = e.svc.Complete(e.ctx, product, version, a.Filename)
				pe := portalError(t, err, portal.EConflict)
				if !strings.Contains(pe.Message, "nothing uploaded yet") {
					t.Fatalf("message %q", pe.Message)
				}
				if after := e.release(); !reflect.DeepEqual(after, before) {
					t.Fatalf("catalog changed:\n%+v\n%+v", before, after)
				}

				// Behind the store's back: caught on complete.
				sneak, err := objs.PresignPut(e.ctx, a.ObjectKey, int64(len(c.wrong)), sha256Hex(c.wrong), time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				put(t, Upload{Method: sneak.Method, URL: sneak.URL, Headers: sneak.Headers}, c.wrong, 0)
				_, err = e.svc.Complete(e.ctx, product, version, a.Filename)
				pe = portalError(t, err, portal.EUnprocessable)
				exp, _ := pe.Details["expected"].(map[string]any)
				act, _ := pe.Details["actual"].(map[string]any)
				if exp["size"] != int64(len(data)) || exp["sha256"] != sha256Hex(data) {
					t.Fatalf("expected %v", exp)
				}
				if act["size"] != int64(len(c.wrong)) || act["sha256"] != sha256Hex(c.wrong) {
					t.Fatalf("actual %v, want size %d sha256 %s", act, len(c.wrong), sha256Hex(c.wrong))
				}
				if da, _ := pe.Details["artifact"].(releases.Artifact); da.Status != releases.Failed || da.ObjectKey != "" {
					t.Fatalf("artifact in details %+v, want failed and public", da)
				}
				got := e.artifact(a.Filename)
				if got.Status != releases.Failed || got.Failure == "" || got.SHA512 != "" || len(got.Signatures) != 0 {
					t.Fatalf("artifact %+v, want failed without digests or signatures", got)
				}
				e.expectGone(a.ObjectKey)
				after := e.release()
				if !reflect.DeepEqual(after.Artifacts[0], before.Artifacts[0]) || after.Status != releases.Draft {
					t.Fatalf("the rest of the release changed:\n%+v\n%+v", before, after)
				}

				// Failed: completing is a conflict; publishing is refused.
				_, err = e.svc.Complete(e.ctx, product, version, a.Filename)
				if pe := portalError(t, err, portal.EConflict); !strings.Contains(pe.Message, "declare it again") {
					t.Fatalf("message %q", pe.Message)
				}
				_, err = e.cat.Publish(e.ctx, product, version)
				portalError(t, err, portal.EConflict)

				// Declaring it again works, under a new key.
				a2, up2 := e.add("app.zip", data)
				if a2.ObjectKey == a.ObjectKey || a2.Status != releases.Waiting {
					t.Fatalf("re-declared %+v", a2)
				}
				put(t, up2, data, 0)
				got, err = e.svc.Complete(e.ctx, product, version, a.Filename)
				if err != nil {
					t.Fatal(err)
				}
				e.verifyUploaded(got, data)
				if _, err := e.cat.Publish(e.ctx, product, version); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

func TestWaitingArtifact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) {
		e := newEnv(t, objs, Options{})
		data := randomBytes(1000)
		a, up := e.add("app.zip", data)

		_, err := e.svc.Complete(e.ctx, product, version, a.Filename)
		if pe := portalError(t, err, portal.EConflict); pe.Message != "nothing uploaded yet for app.zip: PUT the file to the upload URL first" {
			t.Fatalf("message %q", pe.Message)
		}
		if got := e.artifact(a.Filename); got.Status != releases.Waiting {
			t.Fatalf("status %s, want waiting", got.Status)
		}
		_, err = e.cat.Publish(e.ctx, product, version)
		portalError(t, err, portal.EConflict)

		_, err = e.svc.Complete(e.ctx, product, version, "nope.zip")
		portalError(t, err, portal.ENotFound)

		// Declaring a waiting artifact again deletes what its first URL stored.
		put(t, up, data, 0)
		a2, up2 := e.add("app.zip", data)
		e.expectGone(a.ObjectKey)
		put(t, up2, data, 0)
		if _, err := e.svc.Complete(e.ctx, product, version, a2.Filename); err != nil {
			t.Fatal(err)
		}

		// Deleting an artifact deletes its object.
		if err := e.svc.DeleteArtifact(e.ctx, product, version, a2.Filename); err != nil {
			t.Fatal(err)
		}
		e.expectGone(a2.ObjectKey)
		if n := len(e.release().Artifacts); n != 0 {
			t.Fatalf("%d artifacts left", n)
		}
		err = e.svc.DeleteArtifact(e.ctx, product, version, a2.Filename)
		portalError(t, err, portal.ENotFound)
	})
}

// TestAddRefusals: bad input is refused before anything is recorded.
func TestAddRefusals(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	e := newEnv(t, st, Options{})
	good := declaration("app.zip", 10, sha256Hex(make([]byte, 10)))
	cases := []struct {
		name   string
		in     releases.NewArtifact
		sig    string
		code   string
		prod   string
		verStr string
	}{
		{"bad sparkle signature", good, "bm90IGEgc2lnbmF0dXJl", portal.EInvalid, product, version},
		{"bad sha256", declaration("app.zip", 10, "abc"), "", portal.EInvalid, product, version},
		{"zero size", declaration("app.zip", 0, sha256Hex(nil)), "", portal.EInvalid, product, version},
		{"path in filename", declaration("../app.zip", 10, sha256Hex(make([]byte, 10))), "", portal.EInvalid, product, version},
		{"unknown release", good, "", portal.ENotFound, product, "9.9.9"},
		{"unknown product", good, "", portal.ENotFound, "nope", version},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := e.svc.AddArtifact(e.ctx, c.prod, c.verStr, c.in, c.sig)
			portalError(t, err, c.code)
			if n := len(e.release().Artifacts); n != 0 {
				t.Fatalf("%d artifacts recorded", n)
			}
		})
	}
}

// TestSparkleSignatureSupplied: above SparkleMaxSize the portal cannot sign
// for Sparkle and keeps the publisher's signature, or has none.
func TestSparkleSignatureSupplied(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	e := newEnv(t, st, Options{SparkleMaxSize: 1 << 10})
	publisherKey, _ := signing.GenerateKey()

	big := randomBytes(4 << 10)
	sig := publisherKey.SparkleSign(big)
	a, up, err := e.svc.AddArtifact(e.ctx, product, version, declaration("big.zip", int64(len(big)), sha256Hex(big)), " "+sig+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if a.Signatures["ed25519"] != sig {
		t.Fatalf("declared signatures %v, want the supplied one, trimmed", a.Signatures)
	}
	put(t, up, big, 0)
	got, err := e.svc.Complete(e.ctx, product, version, "big.zip")
	if err != nil {
		t.Fatal(err)
	}
	if got.Signatures["ed25519"] != sig {
		t.Fatalf("ed25519 %q, want the publisher's", got.Signatures["ed25519"])
	}
	if err := signing.VerifySparkle(publisherKey.PublicKey(), big, got.Signatures["ed25519"]); err != nil {
		t.Fatal(err)
	}
	b := blake2b.Sum512(big)
	if _, err := signing.VerifyMinisign(e.key.Minisign.MinisignPublicKey(), b[:], []byte(got.Signatures["minisign"])); err != nil {
		t.Fatalf("minisign: %v", err)
	}

	// Without one: no ed25519 signature, minisign still made.
	a, up = e.add("big2.zip", big)
	put(t, up, big, 0)
	got, err = e.svc.Complete(e.ctx, product, version, a.Filename)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Signatures["ed25519"]; ok || got.Signatures["minisign"] == "" {
		t.Fatalf("signatures %v, want minisign only", got.Signatures)
	}

	// A small file: the portal's own signature replaces the supplied one.
	small := randomBytes(100)
	a, up, err = e.svc.AddArtifact(e.ctx, product, version, declaration("small.zip", 100, sha256Hex(small)), publisherKey.SparkleSign(small))
	if err != nil {
		t.Fatal(err)
	}
	put(t, up, small, 0)
	got, err = e.svc.Complete(e.ctx, product, version, a.Filename)
	if err != nil {
		t.Fatal(err)
	}
	e.verifyUploaded(got, small)
}

func TestSweep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) {
		e := newEnv(t, objs, Options{UploadTTL: 10 * time.Minute, UploadGrace: time.Minute})
		done, doneUp := e.add("done.zip", []byte("done"))
		put(t, doneUp, []byte("done"), 0)
		if _, err := e.svc.Complete(e.ctx, product, version, done.Filename); err != nil {
			t.Fatal(err)
		}
		// Uploaded but never completed, and never uploaded at all.
		stale, staleUp := e.add("stale.zip", []byte("stale"))
		put(t, staleUp, []byte("stale"), 0)
		never, _ := e.add("never.zip", []byte("never"))
		doneBefore := e.artifact(done.Filename)

		for _, c := range []struct {
			at   time.Time
			want int
		}{
			{time.Now(), 0},
			{stale.UploadExpiresAt.Add(30 * time.Second), 0}, // within the grace
			{stale.UploadExpiresAt.Add(2 * time.Minute), 2},
			{stale.UploadExpiresAt.Add(time.Hour), 0}, // already failed
		} {
			e.clock.Set(c.at)
			n, err := e.svc.Sweep(e.ctx)
			if err != nil || n != c.want {
				t.Fatalf("Sweep at %v: %d, %v; want %d", c.at, n, err, c.want)
			}
		}
		for _, a := range []releases.Artifact{stale, never} {
			got := e.artifact(a.Filename)
			if got.Status != releases.Failed || got.Failure != FailureExpired {
				t.Fatalf("%s: %+v, want failed as expired", a.Filename, got)
			}
			e.expectGone(a.ObjectKey)
		}
		if got := e.artifact(done.Filename); !reflect.DeepEqual(got, doneBefore) {
			t.Fatalf("uploaded artifact changed: %+v", got)
		}
		if _, err := objs.Stat(e.ctx, done.ObjectKey); err != nil {
			t.Fatalf("uploaded object: %v", err)
		}
		_, err := e.svc.Complete(e.ctx, product, version, stale.Filename)
		portalError(t, err, portal.EConflict)
	})
}

func TestRun(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	e := newEnv(t, st, Options{UploadTTL: time.Minute, UploadGrace: time.Second})
	a, _ := e.add("x.zip", []byte("x"))
	e.clock.Set(a.UploadExpiresAt.Add(time.Hour))
	ctx, cancel := context.WithCancel(e.ctx)
	stopped := make(chan struct{})
	go func() { e.svc.Run(ctx, 10*time.Millisecond); close(stopped) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.artifact(a.Filename).Status != releases.Failed {
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}
