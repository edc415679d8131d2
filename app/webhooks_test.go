package app_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/tokens"
	"github.com/portaldist/portal/webhooks"
)

// verifySignature is the README's verification snippet ("Webhooks"): it
// checks a Portal-Signature header against the raw body and refuses a
// timestamp older than five minutes.
func verifySignature(secret, header string, body []byte, now time.Time) bool {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(t, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(mac.Sum(nil))
	return len(sig) == len(want) && hmac.Equal([]byte(sig), []byte(want))
}

// movable is a clock tests move forward.
type movable struct {
	mu sync.Mutex
	t  time.Time
}

func (c *movable) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *movable) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// receiver is a webhook endpoint on 127.0.0.1 that records what it gets
// and answers with the statuses of answers, then 200.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []received
	answers  []int
	badSig   int
	secret   string
	verified int
}

type received struct {
	event  webhooks.Event
	status int
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.secret != "" {
			if verifySignature(r.secret, req.Header.Get("Portal-Signature"), body, time.Now()) {
				r.verified++
			} else {
				r.badSig++
			}
		}
		status := 200
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		var ev webhooks.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			status = 400
		}
		r.got = append(r.got, received{ev, status})
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) setSecret(s string) { r.mu.Lock(); r.secret = s; r.mu.Unlock() }

func (r *receiver) snapshot() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// waitFor polls cond (up to 20 s) and fails the test with what when it
// never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type portalAPI struct {
	t   *testing.T
	url string
}

// call sends a JSON request and returns the status and the decoded body.
func (p portalAPI) call(method, path, auth string, body any) (int, map[string]any) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.url+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	out := map[string]any{}
	b, _ := io.ReadAll(res.Body)
	json.Unmarshal(b, &out)
	return res.StatusCode, out
}

func (p portalAPI) must(want int, method, path, auth string, body any) map[string]any {
	p.t.Helper()
	st, out := p.call(method, path, auth, body)
	if st != want {
		p.t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
	}
	return out
}

func webhookConfig(t *testing.T, dir, url string, flags map[string]string) *configs.Config {
	t.Helper()
	return loadFlags(t, map[string]string{"data_dir": dir, "public_url": url, "log.access": "false", "admin.socket": ""}, flags)
}

// openServing opens an App on cfg, serves it on ln and returns it with a
// function that closes it.
func openServing(t *testing.T, cfg *configs.Config, opts app.Options, lnURL string) (*app.App, func()) {
	t.Helper()
	ln, err := listenOn(lnURL)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(context.Background(), ln) }()
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := a.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
			<-done
		})
	}
	t.Cleanup(closeFn)
	return a, closeFn
}

func adminAuth(t *testing.T, a *app.App) string {
	t.Helper()
	_, raw, err := a.Tokens.CreateWith(cliCtx, tokens.NewToken{Name: "admin", Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + raw
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestWebhookEvents triggers every event type through the API and checks
// that a receiver on 127.0.0.1 gets each one, signed.
func TestWebhookEvents(t *testing.T) {
	dir := t.TempDir()
	ln, url := listen(t)
	ln.Close()
	cfg := webhookConfig(t, dir, url, map[string]string{
		"webhooks.allow_private_targets": "true", "webhooks.retry_base": "20ms", "webhooks.expiry_interval": "20ms",
	})
	clk := &movable{t: time.Now()}
	a, _ := openServing(t, cfg, app.Options{Now: clk.Now}, url)
	admin := adminAuth(t, a)
	api := portalAPI{t, url}
	rcv := newReceiver(t)

	out := api.must(201, "POST", "/v1/webhooks", admin, map[string]any{"url": rcv.URL, "events": webhooks.EventTypes()})
	secret, _ := out["secret"].(string)
	hook, _ := out["webhook"].(map[string]any)
	if !strings.HasPrefix(secret, "whsec_") || hook["id"] == nil || hook["url"] != rcv.URL {
		t.Fatalf("create: %v", out)
	}
	rcv.setSecret(secret)
	if list := api.must(200, "GET", "/v1/webhooks", admin, nil); len(list["webhooks"].([]any)) != 1 || strings.Contains(jsonText(list), secret) {
		t.Fatalf("list: %v", list)
	}

	// Catalog: a good upload, a failed one, publish, a share link, yank.
	api.must(201, "POST", "/v1/products", admin, map[string]any{"slug": "acme", "name": "Acme", "distribution": "licensed"})
	api.must(201, "POST", "/v1/products/acme/releases", admin, map[string]any{"version": "1.0.0"})
	body := []byte("the acme build")
	up := api.must(201, "POST", "/v1/products/acme/releases/1.0.0/artifacts", admin, map[string]any{
		"filename": "acme.tar.gz", "platform": "linux", "arch": "amd64", "size": len(body), "sha256": shaHex(body)})
	putUpload(t, up["upload"].(map[string]any), body)
	api.must(200, "POST", "/v1/products/acme/releases/1.0.0/artifacts/acme.tar.gz/complete", admin, nil)

	api.must(201, "POST", "/v1/products/acme/releases", admin, map[string]any{"version": "2.0.0"})
	api.must(201, "POST", "/v1/products/acme/releases/2.0.0/artifacts", admin, map[string]any{
		"filename": "bad.tar.gz", "platform": "linux", "arch": "amd64", "size": len(body), "sha256": shaHex(body)})
	rel, err := a.Catalog.Release(cliCtx, "acme", "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	wrong := bytes.Repeat([]byte("x"), len(body))
	sneak, err := a.Objects.PresignPut(context.Background(), rel.Artifacts[0].ObjectKey, int64(len(wrong)), shaHex(wrong), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	putUpload(t, map[string]any{"method": sneak.Method, "url": sneak.URL, "headers": toAny(sneak.Headers)}, wrong)
	api.must(422, "POST", "/v1/products/acme/releases/2.0.0/artifacts/bad.tar.gz/complete", admin, nil)

	api.must(200, "POST", "/v1/products/acme/releases/1.0.0/publish", admin, nil)

	// Licenses: create, update, a share link, suspend; another one expires.
	lic := api.must(201, "POST", "/v1/licenses", admin, map[string]any{"customer": "Initech", "product": "acme", "on_expiry": "revoke"})
	id := lic["license"].(map[string]any)["id"].(string)
	key := lic["key"].(string)
	api.must(200, "PATCH", "/v1/licenses/"+id, admin, map[string]any{"customer": "Initech GmbH"})
	api.must(201, "POST", "/v1/links", "License "+key, map[string]any{"product": "acme", "version": "1.0.0", "filename": "acme.tar.gz", "ttl": "1h"})
	api.must(200, "POST", "/v1/licenses/"+id+"/suspend", admin, nil)
	api.must(200, "POST", "/v1/products/acme/releases/1.0.0/yank", admin, nil)

	exp := api.must(201, "POST", "/v1/licenses", admin, map[string]any{"customer": "Hooli", "product": "acme", "on_expiry": "revoke",
		"expires_at": clk.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	expID := exp["license"].(map[string]any)["id"].(string)
	clk.Add(2 * time.Hour)

	want := webhooks.EventTypes()
	waitFor(t, "every event type", func() bool {
		seen := map[string]bool{}
		for _, r := range rcv.snapshot() {
			seen[r.event.Type] = true
		}
		for _, w := range want {
			if !seen[w] {
				return false
			}
		}
		return true
	})
	// The expiry is announced once, however often the check runs: by the
	// time a license created now is announced, it has run again.
	later := api.must(201, "POST", "/v1/licenses", admin, map[string]any{"customer": "Later", "product": "acme", "on_expiry": "revoke"})
	laterTarget := "license/" + later["license"].(map[string]any)["id"].(string)
	waitFor(t, "the later license.created", func() bool {
		for _, r := range rcv.snapshot() {
			var d webhooks.EventData
			json.Unmarshal(r.event.Data, &d)
			if r.event.Type == webhooks.LicenseCreated && d.Target == laterTarget {
				return true
			}
		}
		return false
	})
	expired := 0
	byType := map[string]webhooks.Event{}
	for _, r := range rcv.snapshot() {
		if r.event.Type == webhooks.LicenseExpired {
			expired++
		}
		byType[r.event.Type] = r.event
	}
	if expired != 1 {
		t.Errorf("license.expired delivered %d times, want 1", expired)
	}
	var data webhooks.EventData
	json.Unmarshal(byType[webhooks.LicenseExpired].Data, &data)
	if data.Target != "license/"+expID {
		t.Errorf("license.expired data %s", byType[webhooks.LicenseExpired].Data)
	}
	json.Unmarshal(byType[webhooks.LicenseSuspended].Data, &data)
	if data.Target != "license/"+id || strings.Contains(string(byType[webhooks.LicenseCreated].Data), key) {
		t.Errorf("license.suspended data %s", byType[webhooks.LicenseSuspended].Data)
	}
	rcv.mu.Lock()
	if rcv.badSig != 0 || rcv.verified == 0 {
		t.Errorf("signatures: %d verified, %d bad", rcv.verified, rcv.badSig)
	}
	rcv.mu.Unlock()

	// The delivery log shows each one with its attempt (recorded just
	// after the receiver answered).
	hookID := hook["id"].(string)
	var list []any
	waitFor(t, "every delivery recorded as succeeded", func() bool {
		ds := api.must(200, "GET", "/v1/webhooks/"+hookID+"/deliveries?limit=200", admin, nil)
		list = ds["deliveries"].([]any)
		for _, d := range list {
			if d.(map[string]any)["status"] != "succeeded" {
				return false
			}
		}
		return len(list) >= len(want)
	})
	d0 := list[0].(map[string]any)
	if at := d0["attempts"].([]any); len(at) != 1 || at[0].(map[string]any)["status_code"] != float64(200) {
		t.Errorf("newest delivery %v", d0)
	}
	if len(list) != len(rcv.snapshot()) {
		t.Errorf("%d deliveries, the receiver got %d", len(list), len(rcv.snapshot()))
	}
	page := api.must(200, "GET", "/v1/webhooks/"+hookID+"/deliveries?limit=2", admin, nil)
	next, _ := page["next_cursor"].(string)
	page2 := api.must(200, "GET", "/v1/webhooks/"+hookID+"/deliveries?limit=2&cursor="+next, admin, nil)
	if next == "" || page2["deliveries"].([]any)[0].(map[string]any)["id"] != list[2].(map[string]any)["id"] {
		t.Errorf("second page %v after cursor %q", page2, next)
	}
	// Deleting the webhook stops deliveries to it.
	api.must(204, "DELETE", "/v1/webhooks/"+hookID, admin, nil)
	api.must(404, "GET", "/v1/webhooks/"+hookID+"/deliveries", admin, nil)
}

func listenOn(url string) (net.Listener, error) {
	return net.Listen("tcp", strings.TrimPrefix(url, "http://"))
}

func jsonText(v any) string { b, _ := json.Marshal(v); return string(b) }

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func putUpload(t *testing.T, up map[string]any, body []byte) {
	t.Helper()
	req, err := http.NewRequest(up["method"].(string), up["url"].(string), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if hs, ok := up["headers"].(map[string]any); ok {
		for k, v := range hs {
			req.Header.Set(k, v.(string))
		}
	}
	req.ContentLength = int64(len(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("PUT: %d", res.StatusCode)
	}
}

// TestWebhookRetryAcrossRestart: the receiver answers 500 twice, then 200.
// The portal is closed after the first failure and opened again on the
// same data directory; the retries go on from the stored delivery and the
// event is delivered successfully exactly once.
func TestWebhookRetryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ln, url := listen(t)
	ln.Close()
	// retry_base 1s: the first retry is due a second after the failure,
	// the second two seconds later.
	cfg := webhookConfig(t, dir, url, map[string]string{
		"webhooks.allow_private_targets": "true", "webhooks.retry_base": "1s",
	})
	a, closeA := openServing(t, cfg, app.Options{}, url)
	admin := adminAuth(t, a)
	api := portalAPI{t, url}
	rcv := newReceiver(t, 500, 500)
	out := api.must(201, "POST", "/v1/webhooks", admin, map[string]any{"url": rcv.URL, "events": []string{"license.created"}})
	rcv.setSecret(out["secret"].(string))
	hookID := out["webhook"].(map[string]any)["id"].(string)
	api.must(201, "POST", "/v1/products", admin, map[string]any{"slug": "acme", "name": "Acme", "distribution": "licensed"})
	api.must(201, "POST", "/v1/licenses", admin, map[string]any{"customer": "Initech", "product": "acme", "on_expiry": "revoke"})

	deliveries := func() []any {
		return api.must(200, "GET", "/v1/webhooks/"+hookID+"/deliveries", admin, nil)["deliveries"].([]any)
	}
	waitFor(t, "the first failed attempt recorded", func() bool {
		ds := deliveries()
		return len(ds) == 1 && len(ds[0].(map[string]any)["attempts"].([]any)) >= 1
	})
	closeA()
	if n := len(rcv.snapshot()); n >= 3 {
		t.Fatalf("the receiver got %d requests before the restart; the test needs the success after it", n)
	}

	a2, closeB := openServing(t, cfg, app.Options{}, url)
	_ = a2
	var d map[string]any
	waitFor(t, "the delivery to succeed after the restart", func() bool {
		ds := deliveries()
		d = ds[0].(map[string]any)
		return len(ds) == 1 && d["status"] == "succeeded"
	})
	closeB()

	got := rcv.snapshot()
	ok := 0
	for _, r := range got {
		if r.status == 200 {
			ok++
		}
		if r.event.ID != got[0].event.ID || r.event.Type != webhooks.LicenseCreated {
			t.Errorf("another event: %+v", r.event)
		}
	}
	if len(got) != 3 || ok != 1 {
		t.Fatalf("receiver got %d requests, %d answered 200; want 3 and 1", len(got), ok)
	}
	attempts := d["attempts"].([]any)
	if len(attempts) != 3 {
		t.Fatalf("attempts %v", attempts)
	}
	for i, want := range []float64{500, 500, 200} {
		at := attempts[i].(map[string]any)
		if at["status_code"] != want || (want == 500) != (at["next_retry"] != nil) {
			t.Errorf("attempt %d: %v", i, at)
		}
	}
	rcv.mu.Lock()
	if rcv.verified != 3 || rcv.badSig != 0 {
		t.Errorf("signatures: %d verified, %d bad", rcv.verified, rcv.badSig)
	}
	rcv.mu.Unlock()
}

// TestWebhookRefusals: without webhooks.allow_private_targets, private
// targets are refused at creation; hostile bodies are refused too, and
// none of it changes the store.
func TestWebhookRefusals(t *testing.T) {
	dir := t.TempDir()
	ln, url := listen(t)
	ln.Close()
	a, _ := openServing(t, webhookConfig(t, dir, url, nil), app.Options{}, url)
	admin := adminAuth(t, a)
	api := portalAPI{t, url}
	dump := func() string {
		var b strings.Builder
		if err := a.DB.View(context.Background(), func(tx store.Tx) error {
			return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
				b.Write(k)
				b.WriteByte('=')
				b.Write(v)
				b.WriteByte('\n')
				return true, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	before := dump()
	bodies := map[string]any{
		"loopback":          map[string]any{"url": "http://127.0.0.1:9/hook", "events": []string{"release.published"}},
		"private":           map[string]any{"url": "http://10.0.0.1/hook", "events": []string{"release.published"}},
		"ipv6 loopback":     map[string]any{"url": "http://[::1]:8080/hook", "events": []string{"release.published"}},
		"metadata":          map[string]any{"url": "http://169.254.169.254/latest/meta-data", "events": []string{"release.published"}},
		"localhost":         map[string]any{"url": "https://localhost/hook", "events": []string{"release.published"}},
		"mapped loopback":   map[string]any{"url": "http://[::ffff:127.0.0.1]/hook", "events": []string{"release.published"}},
		"cgnat":             map[string]any{"url": "http://100.64.1.2/hook", "events": []string{"release.published"}},
		"unknown event":     map[string]any{"url": "https://93.184.216.34/hook", "events": []string{"release.exploded"}},
		"no events":         map[string]any{"url": "https://93.184.216.34/hook", "events": []string{}},
		"bad url":           map[string]any{"url": "not a url", "events": []string{"release.published"}},
		"ftp url":           map[string]any{"url": "ftp://93.184.216.34/hook", "events": []string{"release.published"}},
		"credentials":       map[string]any{"url": "https://u:p@93.184.216.34/hook", "events": []string{"release.published"}},
		"unknown field":     map[string]any{"url": "https://93.184.216.34/hook", "events": []string{"release.published"}, "secret": "mine"},
		"events not a list": map[string]any{"url": "https://93.184.216.34/hook", "events": "release.published"},
	}
	for name, body := range bodies {
		st, out := api.call("POST", "/v1/webhooks", admin, body)
		e, _ := out["error"].(map[string]any)
		if st != 400 || e["code"] != "invalid" {
			t.Errorf("%s: %d %v, want 400 invalid", name, st, out)
		}
	}
	api.must(404, "DELETE", "/v1/webhooks/wh_nope", admin, nil)
	api.must(404, "GET", "/v1/webhooks/wh_nope/deliveries", admin, nil)
	api.must(401, "GET", "/v1/webhooks", "", nil)
	if after := dump(); after != before {
		t.Errorf("the store changed:\n%s\n---\n%s", before, after)
	}
	if list := api.must(200, "GET", "/v1/webhooks", admin, nil); len(list["webhooks"].([]any)) != 0 {
		t.Errorf("webhooks: %v", list)
	}
}
