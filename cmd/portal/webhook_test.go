package main

import (
	"strings"
	"testing"

	"github.com/portaldist/portal/publishing"
)

// TestWebhookVerbs: webhook create, list, deliveries and delete from the
// command line; a loopback target is refused by the server (exit 3).
func TestWebhookVerbs(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	env := p.env()
	p.fails(3, env, []string{"webhook", "create", "http://127.0.0.1:9/hook", "--events", "release.published"}, "invalid", "not public")
	p.fails(3, env, []string{"webhook", "create", "https://93.184.216.34/hook", "--events", "release.exploded"}, "unknown event type")

	r := p.ok(env, "webhook", "create", "https://93.184.216.34/hook", "--events", "release.published,license.created")
	secret := strings.TrimSpace(r.out)
	if !strings.HasPrefix(secret, "whsec_") || !strings.Contains(r.errOut, "shown once") {
		t.Fatalf("create: %s", r)
	}
	list := p.ok(env, "webhook", "list", "--json")
	hooks := decode[struct {
		Webhooks []map[string]any `json:"webhooks"`
	}](t, list.out).Webhooks
	if len(hooks) != 1 || hooks[0]["url"] != "https://93.184.216.34/hook" || strings.Contains(list.out, secret) {
		t.Fatalf("list: %s", list)
	}
	id := hooks[0]["id"].(string)
	if r := p.ok(env, "webhook", "list"); !strings.Contains(r.out, id) || !strings.Contains(r.out, "license.created release.published") {
		t.Fatalf("list: %s", r)
	}
	if r := p.ok(env, "webhook", "deliveries", id); !strings.Contains(r.out, "ATTEMPTS") {
		t.Fatalf("deliveries: %s", r)
	}
	p.ok(env, "webhook", "delete", id)
	p.fails(3, env, []string{"webhook", "delete", id}, "not_found")
}
